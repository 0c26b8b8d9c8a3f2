/**
 * The one way to a plan: describe the mapped tables in both catalogs (in parallel), then compile
 * the mapping against them. Preflight, `pgferry plan` and `pgferry verify` all start here (the reverse
 * pipeline too, through compileReversePlan); problems are returned, not thrown, for each caller to
 * report its own way.
 */
import { describeTables, type CatalogTable, type Queryable } from "../catalog/tableCatalog.js";
import type { TableMapping } from "../config/index.js";
import { compileInverseMappings, invertMappings, type ReverseMapping } from "./inverseMapping.js";
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
  options: { mappings: readonly TableMapping[]; snapshotFormat: CompileInput["snapshotFormat"]; bidirectional?: boolean },
  source: Queryable,
  target: Queryable,
): Promise<LoadedPlan> {
  const [sourceTables, targetTables] = await Promise.all([
    describeTables(source, options.mappings.map((t) => t.from)),
    describeTables(target, options.mappings.map((t) => t.to)),
  ]);
  const { plans, problems } = compileMapping({
    mappings: options.mappings, sourceTables, targetTables, snapshotFormat: options.snapshotFormat, bidirectional: options.bidirectional === true,
  });
  return { plans, problems, sourceTables, targetTables };
}

export interface ReversePlan {
  /** The inverse plan: source = the new database, target = the old one; each edge's index is its forward entry's. */
  plans: TablePlan[];
  /** The forward mapping's problems when it does not compile; otherwise the inverse's, as `tables[i].reverse...`. */
  problems: string[];
  /** Forward-only entries, update-only parts, merges routed back by their constants, shared columns. */
  notes: string[];
  mappings: ReverseMapping[];
}

/**
 * The reverse pipeline's plan (docs/reverse.md): the forward plan compiled as loadPlan does, inverted,
 * and compiled again with the catalogs swapped (the forward's target tables are the reverse's sources).
 * An inverse of a forward mapping that does not compile would only repeat its problems: those are returned.
 */
export async function compileReversePlan(
  options: { mappings: readonly TableMapping[]; snapshotFormat?: CompileInput["snapshotFormat"] },
  databases: { old: Queryable; new: Queryable },
): Promise<ReversePlan> {
  const snapshotFormat = options.snapshotFormat ?? "auto";
  const forward = await loadPlan({ mappings: options.mappings, snapshotFormat, bidirectional: true }, databases.old, databases.new);
  if (forward.problems.length > 0) return { plans: [], problems: forward.problems, notes: [], mappings: [] };
  const inverse = invertMappings(forward.plans, options.mappings);
  const { plans, problems } = compileInverseMappings({
    mappings: inverse.mappings,
    sourceTables: forward.targetTables,
    targetTables: forward.sourceTables,
    snapshotFormat,
  });
  restrictToForwardRows(plans, forward.plans);
  // Grouped by forward entry, in file order, whichever step found them.
  const entry = (problem: string) => Number(/^tables\[(\d+)\]/.exec(problem)?.[1] ?? -1);
  return { plans, problems: [...inverse.problems, ...problems].sort((a, b) => entry(a) - entry(b)), notes: inverse.notes, mappings: inverse.mappings };
}

/**
 * The forward `where` of an entry leaves rows of the old table out of the new one, so its reverse edge
 * accounts only for the old rows that pass it (EdgePlan.targetFilter): those are what the two
 * directions converge on, and what `pgferry verify --direction reverse` compares.
 */
function restrictToForwardRows(reverse: readonly TablePlan[], forward: readonly TablePlan[]): void {
  const filters = new Map(forward.flatMap((plan) => plan.edges.flatMap((edge) => (edge.filter ? [[edge.index, edge.filter] as const] : []))));
  for (const plan of reverse) {
    for (const edge of plan.edges) {
      const filter = filters.get(edge.index);
      if (filter) edge.targetFilter = filter;
    }
  }
}
