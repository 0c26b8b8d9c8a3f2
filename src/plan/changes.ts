/**
 * The rows and changes on either side of the plan: a source row change as the stream reads it,
 * projected onto its plan's `sourceColumns`, and the target changes the mapping turns it into.
 * Values are PostgreSQL text (or null); `UNCHANGED` marks an unchanged TOAST column whose target
 * value must be left as it is (docs/design.md, rule 4). `old` and `new` here are a row before and after a
 * change, never a database: the plan itself only knows a source and a target.
 */
import type { TablePlan } from "./plan.js";

export const UNCHANGED: unique symbol = Symbol("unchanged-toast");
export type Value = string | null | typeof UNCHANGED;

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

/** The end of a source transaction: every change before it (since the previous commit) belongs to it. */
export interface SourceCommit {
  type: "commit";
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: Date;
}

export interface TargetColumn {
  name: string;
  /** The target column's type as `format_type()` prints it, used for casts: `vector(1536)`, `numeric(30,10)`. */
  type: string;
  /** The same type without its modifier, as written values are cast (`character varying`, `vector`); `type` when absent. */
  castType?: string;
}

export interface TargetTable {
  /** Unquoted `schema.table`, for logs, metrics and state. */
  id: string;
  schema: string;
  name: string;
  /** Columns pgferry writes, in the order of every row's values. */
  columns: readonly TargetColumn[];
  /**
   * Indexes (into `columns`) of the key that identifies a row: the target's primary key or unique
   * index the mapping fills. Empty for a table replicated by full old-row match (REPLICA IDENTITY
   * FULL without a key), whose changes are applied one by one in order.
   */
  keyIndexes: readonly number[];
}

/** What a source change becomes on a target table (apply/ adds ordered SQL statements to these). */
export type TargetChange =
  /** Insert or update: the row as it must be after the change. UNCHANGED columns keep their target value. */
  | { kind: "upsert"; table: TargetTable; values: Value[] }
  /** The row whose key is `key` (values of `keyIndexes`, in order) is gone. */
  | { kind: "delete"; table: TargetTable; key: (string | null)[] }
  /**
   * An update that moved a row to a new key while some columns are UNCHANGED: those values exist only
   * in the target row under the old key, so it is updated in place.
   */
  | { kind: "rekey"; table: TargetTable; oldKey: (string | null)[]; values: Value[] }
  /** Keyless table (REPLICA IDENTITY FULL, no key): rows are matched on all their old values. */
  | { kind: "insertRow"; table: TargetTable; values: Value[] }
  | { kind: "updateRow"; table: TargetTable; old: (string | null)[]; values: Value[] }
  | { kind: "deleteRow"; table: TargetTable; old: (string | null)[] }
  | { kind: "truncate"; tables: TargetTable[] }
  /** A TRUNCATE of one of several sources merged into `table`: only the rows carrying its discriminator go. */
  | { kind: "deleteOwned"; table: TargetTable; match: { column: string; type: string; value: string }[] };
