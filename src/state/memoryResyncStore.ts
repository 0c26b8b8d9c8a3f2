/**
 * The ResyncStore in memory (see memoryStores.ts), for unit tests. Its progress statement is
 * carried out by `MemoryState.execute(tx, statement)`, as the applier runs the PostgreSQL one.
 */
import { randomUUID } from "node:crypto";
import type { Statement } from "../apply/types.js";
import { quoteIdent } from "../sql/quote.js";
import { settle, type MemoryResync, type MemoryState } from "./memoryState.js";
import type { ResyncRecord, ResyncStore } from "./resyncStore.js";

function copy(r: MemoryResync): ResyncRecord {
  return {
    id: r.id, table: r.table, state: r.state, lastKey: r.lastKey && [...r.lastKey], rowsDone: r.rowsDone, chunksDone: r.chunksDone,
    rowsEstimated: r.rowsEstimated, startedAt: new Date(r.startedAt), finishedAt: r.finishedAt && new Date(r.finishedAt), error: r.error,
  };
}

export class MemoryResyncStore implements ResyncStore {
  constructor(
    readonly state: MemoryState,
    readonly pipeline: string,
  ) {}

  create(sourceTable: string, rowsEstimated: number | null): Promise<ResyncRecord> {
    return settle(() => {
      this.state.requireMigrated();
      this.state.requirePipeline(this.pipeline);
      const resync: MemoryResync = {
        id: randomUUID(), pipeline: this.pipeline, table: sourceTable, state: "running", lastKey: null, rowsDone: 0, chunksDone: 0,
        rowsEstimated, startedAt: new Date(), finishedAt: null, error: null,
      };
      this.state.resyncs.set(resync.id, resync);
      return copy(resync);
    });
  }

  get(id: string): Promise<ResyncRecord | undefined> {
    return settle(() => {
      this.state.requireMigrated();
      const resync = this.state.resyncs.get(id);
      return resync?.pipeline === this.pipeline ? copy(resync) : undefined;
    });
  }

  running(): Promise<ResyncRecord[]> {
    return settle(() => {
      this.state.requireMigrated();
      const running = [...this.state.resyncs.values()].filter((r) => r.state === "running" && r.pipeline === this.pipeline);
      return running.sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime()).map(copy);
    });
  }

  /** Any pipeline's resync `id`, as the PostgreSQL store's UPDATE by id. */
  fail(id: string, error: string): Promise<void> {
    return settle(() => {
      this.state.requireMigrated();
      const resync = this.state.resyncs.get(id);
      if (resync) Object.assign(resync, { state: "failed", error, finishedAt: new Date() });
    });
  }

  progressStatement(id: string, lastKey: string[] | null, rows: number, done: boolean): Statement {
    const statement: Statement = {
      name: "pgferry_resync_progress",
      text: `memory: resync ${id} progress`,
      values: [id, lastKey, rows, done],
      rows: 0,
      table: `${quoteIdent(this.state.schema)}.resyncs`,
      op: "update",
    };
    const key = lastKey && [...lastKey];
    return this.state.statement(statement, () => {
      const resync = this.state.resyncs.get(id);
      if (!resync) return;
      resync.lastKey = key ?? resync.lastKey;
      resync.rowsDone += rows;
      resync.chunksDone += 1;
      if (done) resync.state = "done";
      // As the PostgreSQL statement's CASE without ELSE: cleared unless done.
      resync.finishedAt = done ? new Date() : null;
    });
  }
}
