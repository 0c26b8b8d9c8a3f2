/** What flows from the replication reader (through its ChangeSink, pipeline/streamSink.ts) to the applier through the change queue. */
import type { OrderedStatements } from "../apply/types.js";
import type { SourceChange, SourceCommit, SourceTruncate } from "../plan/changes.js";

export type SourceOp = "insert" | "update" | "delete" | "truncate";
/** What an applied change is counted as (`pgferry_applied_changes_total{op}`): a resync's rows apart. */
export type CountedOp = SourceOp | "resync";

export type StreamEvent =
  | SourceChange
  | SourceTruncate
  | OrderedStatements
  /** The end of a source transaction: everything before it (since the previous commit) belongs to it. */
  | SourceCommit;

/**
 * In-memory weight of a queued change, for the queue's byte limit: V8 one-byte strings take their
 * length plus a header, a Buffer (a binary stream's opaque value) its length plus its object; the event,
 * row arrays and queue entry objects about 200 bytes.
 */
export function changeBytes(change: SourceChange): number {
  let bytes = 200;
  for (const row of [change.old, change.new]) {
    if (row) for (const v of row) bytes += typeof v === "string" ? v.length + 24 : Buffer.isBuffer(v) ? v.length + 96 : 8;
  }
  return bytes;
}
