/** What flows from the replication reader to the applier through the change queue. */
import type { TargetChange } from "../apply/types.js";

export type SourceOp = "insert" | "update" | "delete" | "truncate";

export type StreamEvent =
  | { type: "change"; change: TargetChange; sourceTable: string; op: SourceOp }
  /** The end of a source transaction: everything before it (since the previous commit) belongs to it. */
  | { type: "commit"; commitLsn: bigint; endLsn: bigint; commitTime: Date };

/**
 * In-memory weight of a queued change, for the queue's byte limit: V8 one-byte strings take their
 * length plus a header; the event, change, value array and queue entry objects about 200 bytes.
 */
export function changeBytes(change: TargetChange): number {
  let bytes = 200;
  const add = (values: readonly unknown[]) => {
    for (const v of values) bytes += typeof v === "string" ? v.length + 24 : 8;
  };
  switch (change.kind) {
    case "upsert":
    case "insertRow":
      add(change.values);
      break;
    case "delete":
      add(change.key);
      break;
    case "rekey":
      add(change.oldKey);
      add(change.values);
      break;
    case "updateRow":
      add(change.old);
      add(change.values);
      break;
    case "deleteRow":
      add(change.old);
      break;
    case "truncate":
      break;
  }
  return bytes;
}
