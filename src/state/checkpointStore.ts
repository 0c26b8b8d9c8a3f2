/**
 * state/ — the pipeline's state behind interfaces (this file, resyncStore.ts), with PostgreSQL and in-memory implementations.
 *
 * The pipeline's own state, behind an interface: the checkpoint (the last source commit applied) and
 * the per-table state machine `pending → copying → ready | errored`, one pipeline per replication slot.
 * PostgresCheckpointStore keeps it in the target (schema `_pgferry` by default), so the checkpoint
 * commits atomically with the data (docs/design.md, rule 2); MemoryCheckpointStore keeps it in memory
 * for unit tests. Both behave alike on the same calls (test/harness/storeContract.ts).
 */
import type { Checkpoint } from "../plan/changes.js";

export type TableState = "pending" | "copying" | "ready" | "errored";

export interface TableStatus {
  table: string;
  state: TableState;
  /** Source changes to this table committed before this LSN are already in its copy. */
  syncLsn: bigint | null;
  rowsCopied: number;
  rowsEstimated: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
}

export interface PipelineState {
  consistentPoint: bigint;
  checkpoint: Checkpoint;
}

/** The pipeline's state with when it was created and last checkpointed, for status and lag reports. */
export interface PipelineSummary extends PipelineState {
  createdAt: Date;
  updatedAt: Date;
}

/**
 * An open transaction on the target, handed through by whoever holds it (the applier, a snapshot
 * worker) to a store write that must commit or roll back with it. Opaque to the callers: the
 * PostgreSQL stores take the transaction's pg client, the memory stores a MemoryTransaction.
 */
export type TransactionHandle = object;

export interface CheckpointStore {
  /** Creates or upgrades the store's storage (for PostgreSQL, the whole state schema); safe to call concurrently and again. */
  migrate(): Promise<void>;
  /** Whether the storage exists (a first `run` migrated it); the reads below need it. */
  exists(): Promise<boolean>;
  /** The pipeline's consistent point and checkpoint; null before `create` (or after `reset`). */
  load(): Promise<PipelineState | null>;
  summary(): Promise<PipelineSummary | null>;
  /** Records a new pipeline whose slot starts at `consistentPoint` (its checkpoint's end), with every table pending. Fails if it exists. */
  create(consistentPoint: bigint, tables: readonly string[]): Promise<void>;
  /** Adds tables that are new in the config as pending (existing ones are kept as they are). */
  addTables(tables: readonly string[]): Promise<void>;
  /** Every table's state, ordered by table name. */
  tables(): Promise<TableStatus[]>;
  /** → copying: the count restarts at 0, the error and finish time are cleared. */
  startCopy(table: string, rowsEstimated: number | null): Promise<void>;
  /** Inside a chunk's copy transaction, so the count commits with the rows. */
  addCopiedRows(tx: TransactionHandle, table: string, rows: number): Promise<void>;
  /** → ready, with the LSN its copy is consistent at (the stream skips its earlier changes). */
  finishCopy(table: string, syncLsn: bigint): Promise<void>;
  /** → errored, with the error (the count is kept; the next start copies it again). */
  failTable(table: string, error: string): Promise<void>;
  /** Inside the apply transaction: the data and the checkpoint commit together (docs/design.md, rule 2). Fails without a pipeline. */
  writeCheckpoint(tx: TransactionHandle, checkpoint: Checkpoint): Promise<void>;
  /** Forgets the pipeline, its tables and its resyncs (after `slot drop`), so the next run starts with a fresh snapshot. */
  reset(): Promise<void>;
}
