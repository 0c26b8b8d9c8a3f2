/**
 * The one way to a plan: describe the mapped tables in both catalogs (in parallel), then compile
 * the mapping against them. Preflight, `pgferry plan` and `pgferry verify` all start here; problems
 * are returned, not thrown, for each caller to report its own way.
 */
import { describeTables, type CatalogTable, type Queryable } from "../catalog/tableCatalog.js";
import type { TableMapping } from "../config/index.js";
import { compileMapping, type CompileInput } from "./mappingCompiler.js";
import type { TablePlan } from "./plan.js";

export interface LoadedPlan {
  plans: TablePlan[];
  /** Every problem the mapping has against the catalogs, grouped by `tables[i]` entry. */
  problems: string[];
  sourceTables: Map<string, CatalogTable | null>;
  targetTables: Map<string, CatalogTable | null>;
}

export async function loadPlan(
  options: { mappings: readonly TableMapping[]; snapshotFormat: CompileInput["snapshotFormat"] },
  source: Queryable,
  target: Queryable,
): Promise<LoadedPlan> {
  const [sourceTables, targetTables] = await Promise.all([
    describeTables(source, options.mappings.map((t) => t.from)),
    describeTables(target, options.mappings.map((t) => t.to)),
  ]);
  const { plans, problems } = compileMapping({ mappings: options.mappings, sourceTables, targetTables, snapshotFormat: options.snapshotFormat });
  return { plans, problems, sourceTables, targetTables };
}
