/** What flows from the replication reader to the applier through the change queue. */
import type { TargetChange } from "../apply/types.js";

export type SourceOp = "insert" | "update" | "delete" | "truncate";

export type StreamEvent =
  | { type: "change"; change: TargetChange; sourceTable: string; op: SourceOp }
  /** The end of a source transaction: everything before it (since the previous commit) belongs to it. */
  | { type: "commit"; commitLsn: bigint; endLsn: bigint; commitTime: Date };

/** Rough in-memory weight of a change, for the queue's and the batch's byte limits. */
export function changeBytes(change: TargetChange): number {
  let bytes = 96;
  const add = (values: readonly unknown[]) => {
    for (const v of values) bytes += typeof v === "string" ? v.length + 16 : 8;
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
