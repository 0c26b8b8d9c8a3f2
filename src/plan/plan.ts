/**
 * src/plan/ is the bottom layer, below transform/, apply/ and pipeline/: the plan (this file), the
 * mapping compiler that builds it from the config and both catalogs (mappingCompiler.ts, loadPlan.ts),
 * the SQL-reference finder (sqlRefs.ts), the plan's pushdown SELECT (snapshotSql.ts), its report for
 * `pgferry plan` (planReport.ts), and the row and change types on either side of it (changes.ts).
 * The plan is directional data: it maps a source to a target, never an old database to a new one,
 * so a plan the other way round is the same kind of data. It imports only catalog/, config/ types,
 * sql/ quoting and errors.ts.
 *
 * The compiled plan: for each mapped source table, the target tables it feeds (one edge per
 * `tables` entry: a split is several edges from one source, a merge several edges into one target)
 * and, per target column, where its value comes from. Built once at start-up by the mapping
 * compiler from the config and both live catalogs; the snapshot, the stream and `pgferry plan` all
 * read the same plan, so a derived value is computed by the same SQL on both paths.
 */
import type { CatalogTable } from "../catalog/tableCatalog.js";
import type { TargetTable } from "./targetTable.js";
import { quoteLiteral } from "../sql/quote.js";

/** Where one target column's value comes from. `input` indexes the plan's `sourceColumns`. */
export type ColumnOrigin =
  /**
   * A source column, copied (or renamed); its text is parsed by the target column's type. `identical`:
   * the target column has the same type, with a portable binary format, and is not an array, so the
   * value may travel through a binary stream as the source sent it (plan.ts `opaqueInputs`; an array
   * could not, as the statements carry a column's values in one array parameter, and PostgreSQL arrays
   * do not nest).
   */
  | { kind: "column"; column: string; input: number; identical?: boolean }
  /** A constant, as text (a discriminator in a merge, a tenant id). */
  | { kind: "const"; value: string }
  /** A SQL expression over the source row, evaluated by the source database. */
  | { kind: "sql"; expr: string; refs: string[] };

export interface SqlFilter {
  expr: string;
  /** Source columns the predicate mentions (a superset: found by name). */
  refs: string[];
}

export interface EdgePlan {
  /** The `tables[index]` entry this edge comes from, for messages. */
  index: number;
  table: TargetTable;
  /** Parallel to `table.columns`. */
  origins: ColumnOrigin[];
  filter: SqlFilter | null;
  /**
   * What the filter means (absent: `exact`). `exact`, a forward `where`: the target holds exactly the
   * source rows that pass, so a row that does not pass is deleted by key. `route`, a reverse edge's
   * filter built from the forward constants (docs/reverse.md): it says which old table a new row goes
   * back to, and a row that does not pass belongs to another edge, so nothing is deleted for it here;
   * deletes follow the old row's route.
   */
  filterMode?: "exact" | "route";
  /**
   * A predicate over the TARGET table, set when the edge accounts for only some of its rows: a reverse
   * edge's old table holds rows its forward edge does not map (the forward `where` left them out), so
   * only those that pass the forward filter, evaluated by the old database, are the edge's. Read by
   * `pgferry verify`; the pipeline never needs it (it writes by key).
   */
  targetFilter?: SqlFilter;
  /** Absolute path of the code hook module, if any. */
  hook: string | null;
  /**
   * Constant columns that mark this edge's rows in a target fed by several sources, so a TRUNCATE
   * or re-copy of one source clears only its rows. Null when the edge owns the whole table.
   */
  ownership: { column: string; type: string; value: string }[] | null;
  /** Binary COPY where every column is copied unchanged between identical types; text otherwise. */
  copyFormat: "binary" | "text";
  /** Whether the stream needs the source database to evaluate expressions or the filter. */
  evaluated: boolean;
}

export interface TablePlan {
  /** The source table as named in the config (`schema.table`); the key of state rows and metrics. */
  id: string;
  source: CatalogTable;
  /** The source columns the edges read, in a fixed order: the stream projects each tuple to it. */
  sourceColumns: string[];
  /** Indexes into `sourceColumns` of the source's identity key (empty: REPLICA IDENTITY FULL, no key). */
  keyInputs: number[];
  edges: EdgePlan[];
}

/** A description of each target column's origin, for `pgferry plan` and, later, reverse mappings. */
export function describeOrigin(origin: ColumnOrigin): string {
  switch (origin.kind) {
    case "column":
      return origin.column;
    case "const":
      return `${quoteLiteral(origin.value)} (constant)`;
    case "sql":
      return `${origin.expr} (sql)`;
  }
}

/**
 * Which of the plan's source columns (parallel to `sourceColumns`) the stream may carry as the binary
 * value the source sent, never read by pgferry: every edge that reads the column copies it unchanged
 * into a column of the identical type (ColumnOrigin `identical`) that is not part of a key; it is not
 * the source key, no filter or SQL expression reads it, and no hook sees the row. A keyless table's
 * old values only find the row to change (each one a parameter of its own type), so they may stay
 * binary too. Every other column is read as text (source/binaryText.ts when the stream is binary).
 */
export function opaqueInputs(plan: TablePlan): boolean[] {
  return plan.sourceColumns.map((name, input) => {
    if (plan.keyInputs.includes(input)) return false;
    return plan.edges.every((edge) => {
      // A keyless row routed back by a reverse edge is reported by all its values when it has no route (changeTransformer unrouted).
      if (edge.hook !== null || edge.filter?.refs.includes(name) || (edge.table.keyIndexes.length === 0 && edge.filterMode === "route")) return false;
      return edge.origins.every((origin, i) => {
        if (origin.kind === "sql") return !origin.refs.includes(name);
        if (origin.kind === "const" || origin.input !== input) return true;
        return origin.identical === true && !edge.table.keyIndexes.includes(i) && !(edge.table.insertOnly ?? []).includes(i);
      });
    });
  });
}
