/**
 * Per-table resync records (see pipeline/resync), behind an interface. A chunk's progress (last
 * source key, rows) is a statement that runs inside the apply transaction carrying that chunk's rows,
 * so a restart resumes after the last chunk that really landed. PostgresResyncStore keeps the records
 * in the target's state schema; MemoryResyncStore in memory, for unit tests.
 */
import type { Statement } from "../apply/types.js";

export type ResyncState = "running" | "done" | "failed";

export interface ResyncRecord {
  id: string;
  table: string;
  state: ResyncState;
  lastKey: string[] | null;
  rowsDone: number;
  chunksDone: number;
  rowsEstimated: number | null;
  startedAt: Date;
  finishedAt: Date | null;
  error: string | null;
}

export interface ResyncStore {
  /** A new running resync of `sourceTable` for this pipeline (which must have its state recorded). */
  create(sourceTable: string, rowsEstimated: number | null): Promise<ResyncRecord>;
  /** This pipeline's resync `id`; undefined if there is none. */
  get(id: string): Promise<ResyncRecord | undefined>;
  /** This pipeline's running resyncs, oldest first. */
  running(): Promise<ResyncRecord[]>;
  /** → failed, with the error. */
  fail(id: string, error: string): Promise<void>;
  /**
   * The progress of one applied chunk, as a statement for the apply transaction that carries its
   * rows: the last key (kept when null), rows and chunks added, and → done when `done`.
   */
  progressStatement(id: string, lastKey: string[] | null, rows: number, done: boolean): Statement;
}
