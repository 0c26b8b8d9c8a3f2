/**
 * Evaluates an edge's SQL (derived columns and the row filter) for a batch of streamed rows, on the
 * source database: the same expressions, over the same column types, that the snapshot pushes down
 * into `COPY (SELECT ...)`, so a derived value is the same whichever path its row took. One query per
 * edge and batch; values come back as the types' text output (no JavaScript parsing).
 */
import { createHash } from "node:crypto";
import pg from "pg";
import type { Endpoint } from "../sql/endpoint.js";
import { quoteIdent } from "../sql/quote.js";
import { PgferryError } from "../errors.js";
import type { EdgePlan, TablePlan } from "../plan/plan.js";
import { evaluatedInputs, type Evaluation, type Evaluator } from "./evaluator.js";

export function evaluationSql(plan: TablePlan, edge: EdgePlan): string {
  const inputs = evaluatedInputs(plan, edge);
  const typed = inputs.map((input, i) => {
    const name = plan.sourceColumns[input]!;
    const type = plan.source.columns.find((c) => c.name === name)!.type;
    return `r.c${i}::${type} AS ${quoteIdent(name)}`;
  });
  const arrays = inputs.map((_, i) => `$${i + 1}::text[]`);
  const names = inputs.map((_, i) => `c${i}`);
  // unnest needs at least one array: a filter or expression over no column still gets one row per input.
  if (inputs.length === 0) {
    arrays.push("$1::text[]");
    names.push("c0");
  }
  const pass = edge.filter ? `coalesce((${edge.filter.expr})::boolean, false)` : "true";
  // A route edge (a reverse split by constants) computes nothing for a row routed elsewhere: its
  // expressions are written for this route's rows only (`legacy_id::int` of a merged table whose
  // other sources keep uuids there), and such a row's values are never used here.
  const route = edge.filter !== null && edge.filterMode === "route";
  const outputs = edge.origins.flatMap((o) => (o.kind === "sql" ? [route ? `CASE WHEN ${pass} THEN (${o.expr}) END` : `(${o.expr})`] : []));
  outputs.push(pass);
  return (
    `SELECT ${outputs.join(", ")} FROM (SELECT ${[...typed, "r.pgferry_ord"].join(", ")} ` +
    `FROM unnest(${arrays.join(", ")}) WITH ORDINALITY AS r(${[...names, "pgferry_ord"].join(", ")})) AS s ORDER BY s.pgferry_ord`
  );
}

/** The Evaluator on the source database (one pooled session, prepared statements per edge). */
export class SourceEvaluator implements Evaluator {
  private readonly pool: pg.Pool;
  private readonly sqlByEdge = new Map<EdgePlan, { name: string; text: string; inputs: number[] }>();

  constructor(source: Endpoint) {
    this.pool = source.pool("pgferry-transform", 1, { rawText: true });
  }

  async evaluate(plan: TablePlan, edge: EdgePlan, rows: readonly (readonly (string | null)[])[]): Promise<Evaluation> {
    let compiled = this.sqlByEdge.get(edge);
    if (!compiled) {
      const text = evaluationSql(plan, edge);
      compiled = { name: `pgferry_eval_${createHash("sha1").update(text).digest("hex").slice(0, 16)}`, text, inputs: evaluatedInputs(plan, edge) };
      this.sqlByEdge.set(edge, compiled);
    }
    const inputs = compiled.inputs;
    const columns = inputs.length === 0 ? [rows.map(() => null)] : inputs.map((input) => rows.map((row) => row[input] ?? null));
    let result: pg.QueryResult<unknown[]>;
    try {
      result = await this.pool.query<unknown[]>({ name: compiled.name, text: compiled.text, values: columns, rowMode: "array" });
    } catch (error) {
      const e = error as { code?: string; message?: string };
      if (e.code && !e.code.startsWith("08") && !e.code.startsWith("57")) {
        throw new PgferryError("mapping", `tables[${edge.index}] (${plan.id} → ${edge.table.id}): the source rejected the mapping's SQL: SQLSTATE ${e.code} ${e.message ?? ""}`, {
          cause: error,
          hint: "fix the expression or filter in the mapping; the changes stay in the slot until it works",
        });
      }
      throw error;
    }
    const sqlCount = edge.origins.filter((o) => o.kind === "sql").length;
    return {
      values: result.rows.map((row) => row.slice(0, sqlCount) as (string | null)[]),
      pass: result.rows.map((row) => row[sqlCount] === true || row[sqlCount] === "t"),
    };
  }

  /**
   * The current source rows (all of the plan's source columns, as text) for these keys, by key
   * (JSON of the key values). For values the stream left out as unchanged TOAST where the mapping
   * needs them: reading them now may see a newer value than the change carried, which the stream
   * then brings anyway, so the target ends the same (Debezium's "reselect" does the same).
   */
  async reselect(plan: TablePlan, keys: readonly (readonly (string | null)[])[]): Promise<Map<string, (string | null)[]>> {
    const keyColumns = plan.keyInputs.map((i) => plan.sourceColumns[i]!);
    const keyTypes = keyColumns.map((k) => plan.source.columns.find((c) => c.name === k)!.type);
    const text =
      `SELECT ${plan.sourceColumns.map(quoteIdent).join(", ")} FROM ${quoteIdent(plan.source.schema)}.${quoteIdent(plan.source.name)} AS s ` +
      `WHERE (${keyColumns.map((k) => `s.${quoteIdent(k)}`).join(", ")}) IN (SELECT ${keyTypes.map((t, i) => `k.c${i}::${t}`).join(", ")} ` +
      `FROM unnest(${keyTypes.map((_, i) => `$${i + 1}::text[]`).join(", ")}) AS k(${keyTypes.map((_, i) => `c${i}`).join(", ")}))`;
    const values = keyColumns.map((_, i) => keys.map((k) => k[i] ?? null));
    const { rows } = await this.pool.query<(string | null)[]>({ text, values, rowMode: "array" });
    return new Map(rows.map((row) => [JSON.stringify(plan.keyInputs.map((i) => row[i] ?? null)), row]));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
