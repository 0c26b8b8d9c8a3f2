/** A target table as the plan compiles it: the columns pgferry writes and the key it matches rows on. */
export interface TargetColumn {
  name: string;
  /** The target column's type as `format_type()` prints it, used for casts: `vector(1536)`, `numeric(30,10)`. */
  type: string;
  /** The same type without its modifier, as written values are cast (`character varying`, `vector`); `type` when absent. */
  castType?: string;
  /** The type's OID in the target database: the element type of a binary array parameter (apply/statements.ts). */
  typeOid?: number;
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
  /**
   * Only existing rows are updated: the edge does not write every column the table needs for an
   * insert (one part of a split, carried back by the reverse; docs/reverse.md), so a change that
   * would insert a row updates it if it is there, and deletes are not applied.
   */
  updateOnly?: boolean;
  /**
   * Columns written by an insert and never by an update (indexes into `columns`): a value derived
   * from the source key alone (which an update never changes) that is not the key rows are matched
   * on. With both directions running, a row created on the new side keeps its own value there (a
   * uuid of its own where old rows get one derived from their id).
   */
  insertOnly?: readonly number[];
}
