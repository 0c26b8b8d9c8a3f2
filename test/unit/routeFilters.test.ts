/**
 * Routing filters of the reverse pipeline (docs/reverse.md, constants and merges): the inverse of a
 * merge of two key tables, compiled from hand-written catalogs by the real inverse compiler, whose
 * filters route each new row back to one old table. A row that does not pass an edge's route is
 * another edge's, so nothing is deleted for it there; a delete follows the old row's route; a row that
 * moves between routes leaves the first table and is inserted into the second; a change that no route
 * takes is reported (`unrouted`) and writes nothing. An in-memory Evaluator stands in for the new
 * database.
 */
import { describe, expect, it } from "vitest";
import type { ApplyChange } from "../../src/apply/types.js";
import type { CatalogTable } from "../../src/catalog/tableCatalog.js";
import type { TableMapping } from "../../src/config/index.js";
import type { SourceChange } from "../../src/plan/changes.js";
import { compileInverseMappings, invertMappings } from "../../src/plan/inverseMapping.js";
import type { EdgePlan, TablePlan } from "../../src/plan/plan.js";
import { ChangeTransformer } from "../../src/transform/changeTransformer.js";
import { evaluatedInputs, type Evaluation, type Evaluator } from "../../src/transform/evaluator.js";
import { column, compilePlans, entry, table } from "../fixtures/plans.js";

type Row = Record<string, string | null>;

/** The new database in memory: each SQL text of the reverse plan as a function of the row (SQL NULL compares false). */
class FakeEvaluator implements Evaluator {
  constructor(private readonly sql: Record<string, (row: Row) => string | boolean | null>) {}

  evaluate(plan: TablePlan, edge: EdgePlan, rows: readonly (readonly (string | null)[])[]): Promise<Evaluation> {
    const inputs = new Set(evaluatedInputs(plan, edge));
    const run = (expr: string, row: Row) => {
      const f = this.sql[expr];
      if (!f) throw new Error(`no fake for ${expr}`);
      return f(row);
    };
    const visible = (row: readonly (string | null)[]): Row => Object.fromEntries(plan.sourceColumns.flatMap((c, i) => (inputs.has(i) ? [[c, row[i] ?? null]] : [])));
    return Promise.resolve({
      values: rows.map((row) => edge.origins.flatMap((o) => (o.kind === "sql" ? [run(o.expr, visible(row)) as string | null] : []))),
      pass: rows.map((row) => (edge.filter ? run(edge.filter.expr, visible(row)) === true : true)),
    });
  }

  reselect(): Promise<Map<string, (string | null)[]>> {
    return Promise.reject(new Error("no re-read expected"));
  }
}

const hooks = new Map();
const at = new Date("2025-01-01T00:00:01.000Z");

/** The reverse plans of forward `mappings` (old `sources` → new `targets`), compiled without a problem. */
function reversePlans(mappings: TableMapping[], sources: CatalogTable[], targets: CatalogTable[]): TablePlan[] {
  const inverse = invertMappings(compilePlans(mappings, sources, targets), mappings);
  const { plans, problems } = compileInverseMappings({
    mappings: inverse.mappings,
    sourceTables: new Map(targets.map((t) => [t.id, t])),
    targetTables: new Map(sources.map((t) => [t.id, t])),
    snapshotFormat: "auto",
  });
  expect([...inverse.problems, ...problems]).toEqual([]);
  return plans;
}

/** A change of the new table, its rows given by column name (absent columns: null, as in a key-only old tuple). */
function rowChange(plan: TablePlan, op: SourceChange["op"], rows: { old?: Row; new?: Row; fullOld?: boolean }): SourceChange {
  const project = (row: Row | undefined) => (row ? plan.sourceColumns.map((c) => row[c] ?? null) : null);
  return { type: "change", plan, op, old: project(rows.old), oldIsFullRow: rows.fullOld ?? false, new: project(rows.new), commitTime: at };
}

/** Changes as plain objects: upserts by their key and whether they insert, deletes by key, unrouted as is. */
function outcome(changes: ApplyChange[]): unknown[] {
  return changes.map((c) => {
    switch (c.kind) {
      case "upsert":
        return { upsert: c.table.id, id: c.values[c.table.keyIndexes[0]!], inserted: c.inserted };
      case "delete":
        return { delete: c.table.id, key: c.key };
      case "unrouted":
        return c;
      default:
        return { [c.kind]: true };
    }
  });
}

// ---- the merge: public.api_keys and public.vendor_api_keys → sec.api_keys, told apart by `source` ----

const apiKeys = table("public.api_keys", [column("id", "integer", { notNull: true, hasDefault: true }), column("key_hash", "text", { notNull: true })], ["id"]);
const vendorKeys = table("public.vendor_api_keys", [column("id", "integer", { notNull: true, hasDefault: true }), column("key_hash", "text", { notNull: true })], ["id"]);
/** Its replica identity is the unique (source, legacy_id), so a key-only old tuple carries the route and the old key. */
const mergedKeys = table(
  "sec.api_keys",
  [column("id", "uuid", { notNull: true }), column("source", "text", { notNull: true }), column("legacy_id", "text", { notNull: true }), column("key_hash", "text", { notNull: true })],
  ["id"],
  { replicaIdentity: "i", identityKey: ["source", "legacy_id"], uniqueKeys: [["id"], ["source", "legacy_id"]] },
);
const keysEntry = (from: string, source: string): TableMapping =>
  entry(from, "sec.api_keys", {
    passthrough: false,
    columns: { id: { sql: `md5('${source}:' || id)::uuid` }, source: { value: source }, legacy_id: { sql: "id::text" }, key_hash: "key_hash" },
    reverse: { columns: { id: "legacy_id::integer" }, forwardOnly: [] },
  });

describe("a reverse split by constants", () => {
  const [plan] = reversePlans([keysEntry("public.api_keys", "api"), keysEntry("public.vendor_api_keys", "vendor")], [apiKeys, vendorKeys], [mergedKeys]);
  const transformer = new ChangeTransformer({
    hooks,
    evaluator: new FakeEvaluator({
      [`"source" = 'api'`]: (row) => row.source === "api",
      [`"source" = 'vendor'`]: (row) => row.source === "vendor",
      "legacy_id::integer": (row) => row.legacy_id ?? null,
    }),
  });
  const key = (source: string, legacyId: string): Row => ({ source, legacy_id: legacyId });
  const row = (source: string, legacyId: string): Row => ({ id: `uuid-${source}-${legacyId}`, source, legacy_id: legacyId, key_hash: "h" });

  it("compiles the constants into route filters, keyed by the old id read from the identity", () => {
    expect(plan!.edges.map((e) => [e.table.id, e.filter?.expr, e.filterMode])).toEqual([
      ["public.api_keys", `"source" = 'api'`, "route"],
      ["public.vendor_api_keys", `"source" = 'vendor'`, "route"],
    ]);
    expect(plan!.keyInputs.map((i) => plan!.sourceColumns[i])).toEqual(["source", "legacy_id"]);
  });

  it("inserts into the one old table the row is routed to, and deletes nothing elsewhere", async () => {
    const out = await transformer.transform([rowChange(plan!, "insert", { new: row("api", "7") })]);
    expect(outcome(out)).toEqual([{ upsert: "public.api_keys", id: "7", inserted: true }]);
  });

  it("updates only the routed table: the other old table's row with the same id is left alone", async () => {
    // Identity unchanged: no old tuple, the route is the new row's.
    const out = await transformer.transform([rowChange(plan!, "update", { new: row("vendor", "7") })]);
    expect(outcome(out)).toEqual([{ upsert: "public.vendor_api_keys", id: "7", inserted: false }]);
  });

  it("deletes only where the old row (its identity: source, legacy_id) was routed", async () => {
    const out = await transformer.transform([rowChange(plan!, "delete", { old: key("api", "7") })]);
    expect(outcome(out)).toEqual([{ delete: "public.api_keys", key: ["7"] }]);
  });

  it("moves a row whose route changed: out of the first old table, inserted into the second", async () => {
    const out = await transformer.transform([rowChange(plan!, "update", { old: key("api", "7"), new: row("vendor", "7") })]);
    // Not a delete of vendor_api_keys 7 (the old key is api_keys'), nor an upsert into api_keys.
    expect(outcome(out)).toEqual([
      { delete: "public.api_keys", key: ["7"] },
      { upsert: "public.vendor_api_keys", id: "7", inserted: true },
    ]);
  });

  it("moves a row to its new old key within its route", async () => {
    const out = await transformer.transform([rowChange(plan!, "update", { old: key("api", "7"), new: row("api", "8") })]);
    expect(outcome(out)).toEqual([
      { delete: "public.api_keys", key: ["7"] },
      { upsert: "public.api_keys", id: "8", inserted: true },
    ]);
  });

  it("takes whole old rows (REPLICA IDENTITY FULL) the same way", async () => {
    const out = await transformer.transform([
      rowChange(plan!, "update", { old: row("api", "7"), fullOld: true, new: { ...row("api", "7"), key_hash: "h2" } }),
      rowChange(plan!, "delete", { old: row("vendor", "9"), fullOld: true }),
    ]);
    expect(outcome(out)).toEqual([
      { upsert: "public.api_keys", id: "7", inserted: false },
      { delete: "public.vendor_api_keys", key: ["9"] },
    ]);
  });

  it("reports a change no route takes, with the row's identity, and writes nothing for it", async () => {
    const unrouted = (source: string, legacyId: string) => ({ kind: "unrouted", table: "sec.api_keys", keyColumns: ["source", "legacy_id"], key: [source, legacyId], at });
    const out = await transformer.transform([
      rowChange(plan!, "insert", { new: row("partner", "1") }),
      // Routed nowhere any more: reported; the old table keeps its row (no guess that it should go).
      rowChange(plan!, "update", { old: key("api", "2"), new: row("partner", "2") }),
      rowChange(plan!, "update", { new: row("partner", "3") }),
      rowChange(plan!, "delete", { old: key("partner", "4") }),
    ]);
    expect(outcome(out)).toEqual([unrouted("partner", "1"), unrouted("partner", "2"), unrouted("partner", "3"), unrouted("partner", "4")]);
  });

  it("routes a row coming back from nowhere as an insert", async () => {
    const out = await transformer.transform([rowChange(plan!, "update", { old: key("partner", "5"), new: row("vendor", "5") })]);
    expect(outcome(out)).toEqual([{ upsert: "public.vendor_api_keys", id: "5", inserted: true }]);
  });
});

describe("a constant that routes a table of its own (one tenant of several)", () => {
  const entries = table("public.memory_entries", [column("id", "bigint", { notNull: true }), column("content", "text", { notNull: true })], ["id"]);
  // FULL: every old tuple is the whole row, so the tenant of a deleted row is known (the inverse keys on the primary key).
  const newEntries = table(
    "sec.memory_entries",
    [column("id", "bigint", { notNull: true }), column("customer_id", "integer", { notNull: true }), column("content", "text", { notNull: true })],
    ["id"],
    { replicaIdentity: "f", identityKey: null },
  );
  const [plan] = reversePlans([entry("public.memory_entries", "sec.memory_entries", { columns: { customer_id: { value: "1" } } })], [entries], [newEntries]);
  const transformer = new ChangeTransformer({ hooks, evaluator: new FakeEvaluator({ [`"customer_id" = '1'`]: (row) => row.customer_id === "1" }) });

  it("carries back the tenant's rows and reports the others'", async () => {
    expect(plan!.edges[0]).toMatchObject({ filterMode: "route", table: { keyIndexes: [0] } });
    const out = await transformer.transform([
      rowChange(plan!, "insert", { new: { id: "1", customer_id: "1", content: "a" } }),
      rowChange(plan!, "delete", { old: { id: "1", customer_id: "1", content: "a" }, fullOld: true }),
      rowChange(plan!, "delete", { old: { id: "2", customer_id: "2", content: "b" }, fullOld: true }),
    ]);
    expect(outcome(out)).toEqual([
      { upsert: "public.memory_entries", id: "1", inserted: true },
      { delete: "public.memory_entries", key: ["1"] },
      { kind: "unrouted", table: "sec.memory_entries", keyColumns: ["id"], key: ["2"], at },
    ]);
  });
});

describe("keyless route edges (REPLICA IDENTITY FULL without a key)", () => {
  const events = table("public.events", [column("kind", "text"), column("body", "text")], null);
  const newEvents = table("sec.events", [column("tenant", "text"), column("kind", "text"), column("body", "text")], null);
  const [plan] = reversePlans([entry("public.events", "sec.events", { columns: { tenant: { value: "t1" } } })], [events], [newEvents]);
  const transformer = new ChangeTransformer({ hooks, evaluator: new FakeEvaluator({ [`"tenant" = 't1'`]: (row) => row.tenant === "t1" }) });

  it("go by each whole row's route, and report a row routed nowhere by all its values", async () => {
    const mine = { tenant: "t1", kind: "a", body: "x" };
    const other = { tenant: "t2", kind: "a", body: "x" };
    const out = await transformer.transform([
      rowChange(plan!, "insert", { new: mine }),
      rowChange(plan!, "update", { old: mine, fullOld: true, new: other }),
      rowChange(plan!, "update", { old: other, fullOld: true, new: mine }),
      rowChange(plan!, "delete", { old: other, fullOld: true }),
    ]);
    expect(outcome(out)).toEqual([
      { insertRow: true },
      { kind: "unrouted", table: "sec.events", keyColumns: ["tenant", "kind", "body"], key: ["t2", "a", "x"], at },
      { insertRow: true },
      { kind: "unrouted", table: "sec.events", keyColumns: ["tenant", "kind", "body"], key: ["t2", "a", "x"], at },
    ]);
  });
});
