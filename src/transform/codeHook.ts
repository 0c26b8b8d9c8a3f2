/**
 * Code hooks: for what SQL cannot say, a table entry may name a JavaScript module whose default
 * export reshapes each mapped row: `(row, context) => row | row[] | null`. Rows are objects of target
 * column → PostgreSQL text (or null; `undefined` for an unchanged TOAST value that must be kept).
 * Returning null drops the row (like a filter); an array writes several rows. On a delete the hook
 * receives the old row (at least its key) and returns the rows whose keys to delete (null: the
 * mapped key). Hooks run only for the tables that name them; both the snapshot and the stream call them.
 */
import { pathToFileURL } from "node:url";
import { PgferryError } from "../errors.js";
import type { TablePlan } from "../plan/plan.js";

export type HookRow = Record<string, string | null | undefined>;

export interface HookContext {
  op: "snapshot" | "insert" | "update" | "delete";
  /** Source table, `schema.table`. */
  source: string;
  /** Target table, `schema.table`. */
  target: string;
}

export type RowHook = (row: HookRow, context: HookContext) => HookRow | HookRow[] | null | undefined;

/** Loads every hook the plans name, once; a module that does not load or export a function is an error naming the entry. */
export async function loadHooks(plans: readonly TablePlan[]): Promise<Map<string, RowHook>> {
  const hooks = new Map<string, RowHook>();
  for (const plan of plans) {
    for (const edge of plan.edges) {
      if (!edge.hook || hooks.has(edge.hook)) continue;
      let module: { default?: unknown; transform?: unknown };
      try {
        module = (await import(pathToFileURL(edge.hook).href)) as typeof module;
      } catch (error) {
        throw new PgferryError("mapping", `tables[${edge.index}].hook: cannot load ${edge.hook}: ${(error as Error).message}`, { cause: error, hint: "fix the module or the path (relative to the config file)" });
      }
      const hook = module.default ?? module.transform;
      if (typeof hook !== "function") {
        throw new PgferryError("mapping", `tables[${edge.index}].hook: ${edge.hook} exports no function (default export or \`transform\`)`);
      }
      hooks.set(edge.hook, hook as RowHook);
    }
  }
  return hooks;
}

/** Runs a hook and checks its answer, so a bad return value names the table instead of corrupting rows. */
export function runHook(hook: RowHook, row: HookRow, context: HookContext, index: number): HookRow[] | null {
  let result: ReturnType<RowHook>;
  try {
    result = hook(row, context);
  } catch (error) {
    throw new PgferryError("mapping", `tables[${index}].hook threw on a ${context.op} of ${context.source}: ${(error as Error).message}`, { cause: error, hint: "fix the hook; the change stays in the slot until it is applied" });
  }
  if (result === null || result === undefined) return null;
  const rows = Array.isArray(result) ? result : [result];
  for (const r of rows) {
    if (typeof r !== "object" || r === null) {
      throw new PgferryError("mapping", `tables[${index}].hook returned ${typeof r} for a ${context.op} of ${context.source}; expected a row object, an array of rows or null`);
    }
    for (const [key, value] of Object.entries(r)) {
      if (value !== null && value !== undefined && typeof value !== "string") {
        r[key] = typeof value === "object" ? JSON.stringify(value) : String(value);
      }
    }
  }
  return rows;
}
