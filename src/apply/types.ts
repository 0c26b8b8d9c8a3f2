/**
 * What the apply side receives: changes already transformed into target rows. Values are
 * PostgreSQL text (or null); `UNCHANGED` marks an unchanged TOAST column whose target value must be
 * left as it is (DESIGN rule 4).
 */
export const UNCHANGED: unique symbol = Symbol("unchanged-toast");
export type Value = string | null | typeof UNCHANGED;

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
  | { kind: "deleteOwned"; table: TargetTable; match: { column: string; type: string; value: string }[] }
  /** A prepared statement that runs in order with the changes around it (resync range deletes and progress). */
  | { kind: "statement"; statement: Statement };

/** A SQL statement with its parameters, ready for `client.query`. `name` makes it a prepared statement. */
export interface Statement {
  name?: string;
  text: string;
  values: unknown[];
  /** Rows this statement carries, for metrics. */
  rows: number;
  table: string;
  op: "insert" | "update" | "delete" | "truncate";
  /** Every row must match a target row; the applier reports rows that did not. */
  expectRows?: boolean;
}
