/**
 * cutover/ — the switch from the old project to the new one (issue: cutover): sequences carried
 * (sequences.ts), the readiness report that gates each traffic step (readiness.ts), and the
 * resumable `cutover` / `rollback` procedures (procedure.ts). The shared shapes are here.
 */

/** One sequence moved (or, with --dry-run, to be moved) by `pgferry sequences sync`. */
export interface SequenceChange {
  /** The database the sequence lives in: `target` (new) when syncing forward, `source` (old) for a rollback. */
  side: "source" | "target";
  sequence: string;
  /** The column it feeds (`schema.table.column`), or null for a sequence named in config. */
  column: string | null;
  /** The next value nextval() would return before the change. */
  from: bigint;
  /** The next value after it (never lower than `from`). */
  to: bigint;
  /** Why `to`: the other side's sequence, the column's max, and the gap. */
  reason: string;
}

export type ReadinessItemName = "lag" | "slot" | "tables" | "resync" | "sequences" | "verify" | "reverse" | "conflicts";

export interface ReadinessItem {
  name: ReadinessItemName;
  ready: boolean;
  /** One line: what was measured, against which limit. */
  detail: string;
  /** When not ready: what to do. */
  hint?: string;
}

export interface ReadinessReport {
  ready: boolean;
  items: ReadinessItem[];
  checkedAt: Date;
}

