/**
 * The snapshot's pushdown: an edge's mapping as one `SELECT` over a source relation (a table, a
 * leaf partition or a ctid range of one), so rows flow source → target as a COPY pipe with no
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

/** A position in a heap: (block, line pointer). Offset 0 is before every tuple of the block. */
export interface Tid {
  block: number;
  offset: number;
}

/** The rows of a ctid range [from, to); an end left out is open (to the end: rows appended since count). */
export function tidRangeConditions(from: Tid | undefined, to: Tid | undefined): string[] {
  const tid = (t: Tid) => `'(${t.block},${t.offset})'::tid`;
  return [...(from ? [`s.ctid >= ${tid(from)}`] : []), ...(to ? [`s.ctid < ${tid(to)}`] : [])];
}

/**
 * Each relation's heap pages, estimated rows (-1: unknown) and bytes without indexes (heap + TOAST),
 * read when the copy starts. $1: relation names as `to_regclass` reads them; a relation gone since
 * yields nulls.
 */
export const RELATION_SIZES_SQL = `
SELECT r.name, (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS pages,
       c.reltuples::float8::text AS reltuples, pg_table_size(c.oid)::text AS bytes
FROM unnest($1::text[]) AS r(name)
LEFT JOIN pg_class c ON c.oid = to_regclass(r.name)`;
