/**
 * verify/ — `pgferry verify`.
 *
 * `pgferry verify`: compares each target table with what the mapping makes of its source rows,
 * without loading either into memory. Both sides compute, per bucket of target keys, a row count and
 * a sum of row hashes (the source side through the mapping's own SQL, cast to the target's column
 * types so both print values alike); only buckets that differ are listed key by key. While the
 * pipeline streams, a differing bucket is compared again a few times and reported only if it stays
 * different, so changes in flight are not mistaken for drift.
 *
 * The plan may be either direction's: for the reverse (docs/reverse.md) the source is the new
 * database, the target the old one, and each edge compares only the old rows its forward edge maps
 * (EdgePlan.targetFilter) on the columns the reverse writes.
 */
import type pg from "pg";
import { qualifiedName, quoteIdent, quoteLiteral } from "../sql/quote.js";
import type { ColumnOrigin, EdgePlan, TablePlan } from "../plan/plan.js";

export interface EdgeReport {
  source: string;
  target: string;
  rows: number;
  status: "equal" | "different" | "skipped";
  reason?: string;
  missing: number;
  extra: number;
  changed: number;
  /** The first differing target keys, as `(k1,k2)` text. */
  examples: { key: string; problem: "missing on target" | "extra on target" | "different" }[];
}

export interface VerifyOptions {
  source: pg.Pool;
  target: pg.Pool;
  /** How many differing keys to list per table. */
  examples: number;
  /** Times a differing bucket is compared again before it counts (streaming moves rows meanwhile). */
  rechecks: number;
  recheckDelayMs: number;
}

interface Side {
  pool: pg.Pool;
  /** SELECT producing (key text, row text) per row. */
  rows: string;
}

interface BucketSums { count: number; hash: string }

async function bucketSums(side: Side, buckets: number): Promise<Map<number, BucketSums>> {
  const { rows } = await side.pool.query<{ b: number; n: string; h: string }>(
    `SELECT abs(hashtext(k) % ${buckets}) AS b, count(*)::text AS n, sum(hashtext(r)::bigint)::text AS h FROM (${side.rows}) AS v(k, r) GROUP BY 1`,
  );
  return new Map(rows.map((r) => [r.b, { count: Number(r.n), hash: r.h }]));
}

async function bucketRows(side: Side, buckets: number, bucket: number): Promise<Map<string, string>> {
  const { rows } = await side.pool.query<{ k: string; r: string }>(
    `SELECT k, md5(r) AS r FROM (${side.rows}) AS v(k, r) WHERE abs(hashtext(k) % ${buckets}) = $1`,
    [bucket],
  );
  return new Map(rows.map((r) => [r.k, r.r]));
}

/** Target types the source also knows are cast to on the source side; others compare as text. */
async function castableTypes(source: pg.Pool, types: readonly string[]): Promise<Set<string>> {
  const { rows } = await source.query<{ t: string }>(
    "SELECT t FROM unnest($1::text[]) AS t WHERE to_regtype(t) IS NOT NULL",
    [[...new Set(types)]],
  );
  return new Set(rows.map((r) => r.t));
}

/**
 * A json column fed from anything but a json column holds the text its value had there (jsonb's,
 * with keys sorted and duplicates gone), while the column may still hold the text it was created
 * with (a reverse edge's old json column before the reverse first writes it): compared by value.
 */
function jsonByValue(plan: TablePlan, origin: ColumnOrigin, type: string): boolean {
  if (type !== "json") return false;
  return origin.kind !== "column" || plan.source.columns.find((c) => c.name === origin.column)?.type !== "json";
}

function sides(plan: TablePlan, edge: EdgePlan, options: VerifyOptions, castable: Set<string>): [Side, Side] {
  const columns = edge.table.columns;
  const asJsonb = edge.origins.map((o, i) => jsonByValue(plan, o, columns[i]!.type));
  const expr = edge.origins.map((o, i) => {
    const value = o.kind === "column" ? `s.${quoteIdent(o.column)}` : o.kind === "const" ? quoteLiteral(o.value) : `(${o.expr})`;
    const type = columns[i]!.type;
    return asJsonb[i] ? `(${value})::jsonb` : castable.has(type) ? `(${value})::${type}` : `(${value})::text`;
  });
  const targetExpr = columns.map((c, i) =>
    asJsonb[i] ? `t.${quoteIdent(c.name)}::jsonb` : castable.has(c.type) ? `t.${quoteIdent(c.name)}` : `t.${quoteIdent(c.name)}::text`,
  );
  const keyed = edge.table.keyIndexes.length > 0;
  const keyOf = (list: string[]) => (keyed ? `ROW(${edge.table.keyIndexes.map((k) => list[k]).join(", ")})::text` : `ROW(${list.join(", ")})::text`);
  // Insert-only columns (a uuid derived from the old id, with both directions running) hold the new
  // side's own value on rows created there: compared only through the key rows are matched on.
  const compared = (list: string[]) => list.filter((_, i) => !edge.table.insertOnly?.includes(i));
  const filter = edge.filter ? ` WHERE (${edge.filter.expr})` : "";
  // The target rows this edge accounts for: a merge's own (its constants), a reverse edge's forward-mapped ones.
  const targetRows = [
    ...(edge.ownership ?? []).map((o) => `t.${quoteIdent(o.column)} = ${quoteLiteral(o.value)}::${o.type}`),
    ...(edge.targetFilter ? [`(${edge.targetFilter.expr})`] : []),
  ];
  const owned = targetRows.length > 0 ? ` WHERE ${targetRows.join(" AND ")}` : "";
  // A partitioned source is read through its root (all partitions), like the stream publishes it.
  const source: Side = {
    pool: options.source,
    rows: `SELECT ${keyOf(expr)}, ROW(${compared(expr).join(", ")})::text FROM ${quoteIdent(plan.source.schema)}.${quoteIdent(plan.source.name)} AS s${filter}`,
  };
  const target: Side = { pool: options.target, rows: `SELECT ${keyOf(targetExpr)}, ROW(${compared(targetExpr).join(", ")})::text FROM ${qualifiedName(edge.table)} AS t${owned}` };
  return [source, target];
}

async function verifyEdge(plan: TablePlan, edge: EdgePlan, options: VerifyOptions): Promise<EdgeReport> {
  const report: EdgeReport = { source: plan.id, target: edge.table.id, rows: 0, status: "equal", missing: 0, extra: 0, changed: 0, examples: [] };
  if (edge.hook) return { ...report, status: "skipped", reason: "a code hook reshapes its rows; SQL cannot recompute them" };
  const castable = await castableTypes(options.source, edge.table.columns.map((c) => c.type));
  const [source, target] = sides(plan, edge, options, castable);
  const buckets = Math.min(65_536, Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(1, (plan.source.estimatedRows ?? 0) / 2000)))));
  const [expected, actual] = await Promise.all([bucketSums(source, buckets), bucketSums(target, buckets)]);
  report.rows = [...expected.values()].reduce((sum, b) => sum + b.count, 0);
  let differing = [...new Set([...expected.keys(), ...actual.keys()])].filter((b) => {
    const e = expected.get(b);
    const a = actual.get(b);
    return e?.count !== a?.count || e?.hash !== a?.hash;
  });
  for (let attempt = 0; differing.length > 0; attempt += 1) {
    const still: number[] = [];
    const found: EdgeReport["examples"] = [];
    let missing = 0, extra = 0, changed = 0;
    for (const bucket of differing) {
      const [e, a] = await Promise.all([bucketRows(source, buckets, bucket), bucketRows(target, buckets, bucket)]);
      let differs = false;
      for (const [key, hash] of e) {
        const other = a.get(key);
        if (other === hash) continue;
        differs = true;
        if (other === undefined) missing += 1;
        else changed += 1;
        found.push({ key, problem: other === undefined ? "missing on target" : "different" });
      }
      for (const key of a.keys()) {
        if (e.has(key)) continue;
        differs = true;
        extra += 1;
        found.push({ key, problem: "extra on target" });
      }
      if (differs) still.push(bucket);
    }
    differing = still;
    if (differing.length === 0) break;
    if (attempt >= options.rechecks) {
      return { ...report, status: "different", missing, extra, changed, examples: found.slice(0, options.examples) };
    }
    await new Promise((resolve) => setTimeout(resolve, options.recheckDelayMs));
  }
  return report;
}

export async function verify(plans: readonly TablePlan[], options: VerifyOptions, only?: string): Promise<EdgeReport[]> {
  const reports: EdgeReport[] = [];
  for (const plan of plans) {
    for (const edge of plan.edges) {
      if (only && only !== plan.id && only !== edge.table.id) continue;
      reports.push(await verifyEdge(plan, edge, options));
    }
  }
  return reports;
}

export function formatReports(reports: readonly EdgeReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    const head = `${r.source} -> ${r.target}: `;
    if (r.status === "skipped") lines.push(`${head}skipped (${r.reason})`);
    else if (r.status === "equal") lines.push(`${head}equal (${r.rows} rows)`);
    else {
      lines.push(`${head}DIFFERENT: ${r.missing} missing on target, ${r.extra} extra on target, ${r.changed} different (of ${r.rows} source rows)`);
      for (const e of r.examples) lines.push(`    ${e.problem}: key ${e.key}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
