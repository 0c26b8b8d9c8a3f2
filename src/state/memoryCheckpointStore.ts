/**
 * The CheckpointStore in memory (see memoryStores.ts), for unit tests: the same state machine and
 * the same failures as PostgresCheckpointStore, without a database.
 */
import type { CheckpointStore, PipelineState, PipelineSummary, TableStatus, TransactionHandle } from "./checkpointStore.js";
import type { Checkpoint } from "../plan/changes.js";
import { settle, type MemoryState } from "./memoryState.js";

function copyTable(t: TableStatus): TableStatus {
  return { ...t, startedAt: t.startedAt && new Date(t.startedAt), finishedAt: t.finishedAt && new Date(t.finishedAt) };
}

function copyCheckpoint(c: Checkpoint): Checkpoint {
  return { ...c, commitTime: c.commitTime && new Date(c.commitTime) };
}

export class MemoryCheckpointStore implements CheckpointStore {
  constructor(
    readonly state: MemoryState,
    readonly pipeline: string,
  ) {}

  migrate(): Promise<void> {
    return settle(() => {
      this.state.migrated = true;
    });
  }

  exists(): Promise<boolean> {
    return settle(() => this.state.migrated);
  }

  async load(): Promise<PipelineState | null> {
    const state = await this.summary();
    return state && { consistentPoint: state.consistentPoint, checkpoint: state.checkpoint };
  }

  summary(): Promise<PipelineSummary | null> {
    return settle(() => {
      this.state.requireMigrated();
      const p = this.state.pipelines.get(this.pipeline);
      if (!p) return null;
      return { consistentPoint: p.consistentPoint, checkpoint: copyCheckpoint(p.checkpoint), createdAt: new Date(p.createdAt), updatedAt: new Date(p.updatedAt) };
    });
  }

  create(consistentPoint: bigint, tables: readonly string[]): Promise<void> {
    return settle(() => {
      this.state.requireMigrated();
      if (this.state.pipelines.has(this.pipeline)) throw new Error(`pipeline ${this.pipeline} already has a state row`);
      const now = new Date();
      this.state.pipelines.set(this.pipeline, {
        consistentPoint,
        checkpoint: { commitLsn: 0n, endLsn: consistentPoint, commitTime: null },
        createdAt: now,
        updatedAt: now,
        tables: new Map(),
      });
      this.insertTables(tables);
    });
  }

  addTables(tables: readonly string[]): Promise<void> {
    return settle(() => {
      this.state.requireMigrated();
      this.insertTables(tables);
    });
  }

  private insertTables(tables: readonly string[]): void {
    if (tables.length === 0) return;
    const p = this.state.requirePipeline(this.pipeline);
    for (const table of tables) {
      if (!p.tables.has(table)) {
        p.tables.set(table, { table, state: "pending", syncLsn: null, rowsCopied: 0, rowsEstimated: null, startedAt: null, finishedAt: null, error: null });
      }
    }
  }

  tables(): Promise<TableStatus[]> {
    return settle(() => {
      this.state.requireMigrated();
      const tables = [...(this.state.pipelines.get(this.pipeline)?.tables.values() ?? [])];
      return tables.sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0)).map(copyTable);
    });
  }

  startCopy(table: string, rowsEstimated: number | null): Promise<void> {
    return this.updateTable(table, (t) => Object.assign(t, { state: "copying", rowsCopied: 0, rowsEstimated, startedAt: new Date(), finishedAt: null, error: null }));
  }

  addCopiedRows(tx: TransactionHandle, table: string, rows: number): Promise<void> {
    return settle(() => {
      this.state.requireMigrated();
      this.state.write({ kind: "copiedRows", tx, pipeline: this.pipeline, table, rows }, () => {
        const t = this.state.pipelines.get(this.pipeline)?.tables.get(table);
        if (t) t.rowsCopied += rows;
      });
    });
  }

  finishCopy(table: string, syncLsn: bigint): Promise<void> {
    return this.updateTable(table, (t) => Object.assign(t, { state: "ready", syncLsn, finishedAt: new Date() }));
  }

  failTable(table: string, error: string): Promise<void> {
    return this.updateTable(table, (t) => Object.assign(t, { state: "errored", error }));
  }

  writeCheckpoint(tx: TransactionHandle, checkpoint: Checkpoint): Promise<void> {
    return settle(() => {
      this.state.requireMigrated();
      this.state.requirePipeline(this.pipeline);
      const written = copyCheckpoint(checkpoint);
      this.state.write({ kind: "checkpoint", tx, pipeline: this.pipeline, checkpoint: written }, () => {
        const p = this.state.pipelines.get(this.pipeline);
        if (!p) return;
        p.checkpoint = copyCheckpoint(written);
        p.updatedAt = new Date();
      });
    });
  }

  /** Forgets the pipeline with its tables and resyncs, as the PostgreSQL store's cascade does. */
  reset(): Promise<void> {
    return settle(() => {
      this.state.requireMigrated();
      this.state.pipelines.delete(this.pipeline);
      for (const [id, resync] of this.state.resyncs) if (resync.pipeline === this.pipeline) this.state.resyncs.delete(id);
    });
  }

  private updateTable(table: string, update: (t: TableStatus) => void): Promise<void> {
    return settle(() => {
      this.state.requireMigrated();
      const t = this.state.pipelines.get(this.pipeline)?.tables.get(table);
      if (t) update(t);
    });
  }
}
