/** What flows from the replication reader to the applier through the change queue. */
import type { Statement, Value } from "../apply/types.js";
import type { TablePlan } from "../transform/plan.js";

export type SourceOp = "insert" | "update" | "delete" | "truncate";
/** What an applied change is counted as (`pgferry_applied_changes_total{op}`): a resync's rows apart. */
export type CountedOp = SourceOp | "resync";

/** A source tuple projected onto its plan's `sourceColumns`; UNCHANGED marks unchanged TOAST. */
export type SourceRow = Value[];

/** One source row change, before the mapping turns it into target changes. */
export interface SourceChange {
  type: "change";
  plan: TablePlan;
  op: "insert" | "update" | "delete";
  /** The old key ('K', other columns null) or the whole old row ('O', REPLICA IDENTITY FULL), when sent. */
  old: SourceRow | null;
  oldIsFullRow: boolean;
  new: SourceRow | null;
  /** A row re-read by a resync (applied as an update, counted as `resync`). */
  resync?: true;
}

export interface SourceTruncate {
  type: "truncate";
  plans: TablePlan[];
}

/** Statements that run in stream order (a resync chunk's range delete and progress); `onApplied` after their commit. */
export interface OrderedStatements {
  type: "statements";
  statements: Statement[];
  onApplied?: () => void;
}

export type StreamEvent =
  | SourceChange
  | SourceTruncate
  | OrderedStatements
  /** The end of a source transaction: everything before it (since the previous commit) belongs to it. */
  | { type: "commit"; commitLsn: bigint; endLsn: bigint; commitTime: Date };

/**
 * In-memory weight of a queued change, for the queue's byte limit: V8 one-byte strings take their
 * length plus a header; the event, row arrays and queue entry objects about 200 bytes.
 */
export function changeBytes(change: SourceChange): number {
  let bytes = 200;
  for (const row of [change.old, change.new]) {
    if (row) for (const v of row) bytes += typeof v === "string" ? v.length + 24 : 8;
  }
  return bytes;
}
