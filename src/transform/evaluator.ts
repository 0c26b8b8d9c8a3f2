/**
 * What the ChangeTransformer needs from the source database, as an interface: evaluating an edge's
 * SQL (derived columns and the row filter) for a run of streamed rows, and re-reading values the
 * stream left out as unchanged TOAST (docs/design.md, rule 4). SourceEvaluator implements it on the
 * source database; unit tests give the transformer an in-memory one.
 */
import type { EdgePlan, TablePlan } from "../plan/plan.js";

export interface Evaluation {
  /** Per row, the value of each `sql` origin, in origin order. */
  values: (string | null)[][];
  pass: boolean[];
}

export interface Evaluator {
  /**
   * The edge's `sql` origins and filter over each row (full source rows, indexed like
   * `plan.sourceColumns`; only `evaluatedInputs(plan, edge)` are read), one result per row, in order.
   */
  evaluate(plan: TablePlan, edge: EdgePlan, rows: readonly (readonly (string | null)[])[]): Promise<Evaluation>;
  /**
   * The current source rows (all of the plan's source columns, as text) for these keys (values of
   * `plan.keyInputs`), by key as `JSON.stringify` of the key values; a key without a row is absent.
   */
  reselect(plan: TablePlan, keys: readonly (readonly (string | null)[])[]): Promise<Map<string, (string | null)[]>>;
}

/** The columns (by index into `plan.sourceColumns`) an edge's expressions and filter read. */
export function evaluatedInputs(plan: TablePlan, edge: EdgePlan): number[] {
  const refs = new Set<string>(edge.filter?.refs ?? []);
  for (const origin of edge.origins) if (origin.kind === "sql") origin.refs.forEach((r) => refs.add(r));
  return plan.sourceColumns.flatMap((name, i) => (refs.has(name) ? [i] : []));
}
