/**
 * One entry of `tables`: where a source table goes. Kept apart from the rest of the schema because
 * the mapping language grows here (rename, derive, filter, merge, split): new keys are added to
 * this object, and `strict` keeps a misspelt key from silently meaning "no transform".
 */
import { z } from "zod";
import { IDENTIFIER } from "./fields.js";

/** `schema.table`, each part an unquoted identifier. */
export function qualifiedTableName() {
  return z.string().refine(isQualifiedName, { error: 'expected "schema.table"' });
}

function isQualifiedName(text: string): boolean {
  const dot = text.indexOf(".");
  return dot > 0 && IDENTIFIER.test(text.slice(0, dot)) && IDENTIFIER.test(text.slice(dot + 1));
}

const columnName = () => z.string().min(1).max(63, { error: "expected a column name (at most 63 bytes)" });

/**
 * Where a target column's value comes from: a source column (rename), a constant, or a SQL
 * expression over the source row (evaluated by the source database, in the snapshot and the stream).
 */
const columnSourceSchema = z.union([
  columnName(),
  z.strictObject({ from: columnName() }),
  z.strictObject({ value: z.union([z.string(), z.number(), z.boolean()]).transform((v) => String(v)) }),
  z.strictObject({ sql: z.string().trim().min(1, { error: "expected a SQL expression" }) }),
], { error: "expected a source column name, { from: column }, { value: constant } or { sql: expression }" });

/**
 * How an entry is carried back by the reverse pipeline (new → old, docs/reverse.md). `false`: the edge
 * is forward-only. Otherwise moves and renames invert by themselves; what cannot is stated here.
 */
const reverseEdgeSchema = z.union([
  z.literal(false),
  z.strictObject({
    /** Source column ← a SQL expression over the target row, evaluated by the target (new) database. */
    columns: z.record(columnName(), z.string().trim().min(1, { error: "expected a SQL expression over the target row" })).default({}),
    /** Target columns derived by `{ sql }` whose value is not carried back: their source columns keep their value (or default on insert). */
    forwardOnly: z.array(columnName()).default([]),
    /** A JavaScript module that reshapes each reverse-mapped row (path relative to the config file); an entry with a forward hook needs one. */
    hook: z.string().min(1).optional(),
  }),
], { error: "expected false (forward-only) or { columns, forwardOnly, hook }" });

export type ReverseEdge = z.output<typeof reverseEdgeSchema>;

export const tableMappingSchema = z.strictObject({
  from: qualifiedTableName(),
  to: qualifiedTableName(),
  /** Target column → its source. Same-named columns pass through without being listed. */
  columns: z.record(columnName(), columnSourceSchema).default({}),
  /** Source columns that are not copied by name. */
  exclude: z.array(columnName()).default([]),
  /** Whether same-named columns pass through (true) or only `columns` are written (false). */
  passthrough: z.boolean().default(true),
  /** Row filter: a SQL predicate over the source row; the target holds exactly the rows that pass. */
  where: z.string().trim().min(1, { error: "expected a SQL predicate" }).optional(),
  /** A JavaScript module whose default export reshapes each mapped row (path relative to the config file). */
  hook: z.string().min(1).optional(),
  /** The reverse direction of this entry (only read when the config has a `reverse` section). */
  reverse: reverseEdgeSchema.optional(),
});

export type ColumnSource = z.output<typeof columnSourceSchema>;

export type TableMapping = z.output<typeof tableMappingSchema>;

/**
 * The whole list. The same source may feed several targets (split) and several sources one target
 * (merge), but the same pair twice would apply every change twice.
 */
export const tableMappingsSchema = z
  .array(tableMappingSchema)
  .min(1, { error: "must list at least one table" })
  .superRefine((mappings, ctx) => {
    const seen = new Map<string, number>();
    mappings.forEach((mapping, index) => {
      const key = `${mapping.from}\u0000${mapping.to}`;
      const first = seen.get(key);
      if (first === undefined) seen.set(key, index);
      else ctx.addIssue({ code: "custom", path: [index], message: `duplicate of tables[${first}] (same from and to)`, input: mapping });
    });
  });
