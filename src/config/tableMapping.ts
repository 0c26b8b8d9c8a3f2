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

export const tableMappingSchema = z.strictObject({
  from: qualifiedTableName(),
  to: qualifiedTableName(),
});

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
