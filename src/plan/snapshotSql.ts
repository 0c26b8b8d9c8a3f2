/**
 * The snapshot's pushdown: an edge's mapping as one `SELECT` over a source relation (a table, a
 * leaf partition or a block range of one), so rows flow source → target as a COPY pipe with no
 * per-row JavaScript. Derived columns and the filter are the same SQL the stream evaluates.
 */
import { qualifiedName, quoteIdent, quoteLiteral } from "../sql/quote.js";
import type { EdgePlan } from "./plan.js";

export function selectList(edge: EdgePlan): string {
  return edge.origins
    .map((o) => (o.kind === "column" ? `s.${quoteIdent(o.column)}` : o.kind === "const" ? quoteLiteral(o.value) : `(${o.expr})`))
    .join(", ");
}

export function snapshotSelect(edge: EdgePlan, relation: { schema: string; name: string }, conditions: readonly string[] = []): string {
  const where = [...conditions, ...(edge.filter ? [`(${edge.filter.expr})`] : [])];
  return `SELECT ${selectList(edge)} FROM ONLY ${qualifiedName(relation)} AS s${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""}`;
}
