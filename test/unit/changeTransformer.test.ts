/**
 * The change transformer on plans compiled from catalogs written by hand, with an in-memory
 * Evaluator standing in for the source database: inserts, updates and deletes mapped through a
 * plan; a filter moving rows in and out (an update becomes an upsert or a delete); unchanged TOAST
 * values left out (docs/design.md, rule 4) or re-read when the mapping needs them; derived columns;
 * keyless tables; a TRUNCATE of one merged source deleting only its own rows; which upserts insert
 * their row. Route filters (the reverse's) are in routeFilters.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { ApplyChange, OrderedStatements } from "../../src/apply/types.js";
import { UNCHANGED, type SourceTruncate, type Value } from "../../src/plan/changes.js";
import type { TargetTable } from "../../src/plan/targetTable.js";
import type { EdgePlan, TablePlan } from "../../src/plan/plan.js";
import { ChangeTransformer } from "../../src/transform/changeTransformer.js";
import { evaluatedInputs, type Evaluation, type Evaluator } from "../../src/transform/evaluator.js";
import { change, column, compilePlans, entry, table } from "../fixtures/plans.js";

type Row = Record<string, string | null>;

/**
 * The source database in memory: each SQL text the mapping uses is a JavaScript function of the
 * row; `rows` are the source's current rows, for re-reads of unchanged TOAST values.
 */
class FakeEvaluator implements Evaluator {
  readonly evaluations: { edge: string; rows: number }[] = [];
  readonly reselects: { plan: string; keys: (string | null)[][] }[] = [];

  constructor(
    private readonly sql: Record<string, (row: Row) => string | boolean | null>,
    private readonly rows: Row[] = [],
  ) {}

  evaluate(plan: TablePlan, edge: EdgePlan, rows: readonly (readonly (string | null)[])[]): Promise<Evaluation> {
    this.evaluations.push({ edge: edge.table.id, rows: rows.length });
    const inputs = new Set(evaluatedInputs(plan, edge));
    const run = (expr: string, row: Row) => {
      const f = this.sql[expr];
      if (!f) throw new Error(`no fake for ${expr}`);
      return f(row);
    };
    // Only the columns the edge's SQL reads are visible, as on the source.
    const visible = (row: readonly (string | null)[]): Row => Object.fromEntries(plan.sourceColumns.flatMap((c, i) => (inputs.has(i) ? [[c, row[i] ?? null]] : [])));
    return Promise.resolve({
      values: rows.map((row) => edge.origins.flatMap((o) => (o.kind === "sql" ? [run(o.expr, visible(row)) as string | null] : []))),
      pass: rows.map((row) => (edge.filter ? run(edge.filter.expr, visible(row)) === true : true)),
    });
  }

  reselect(plan: TablePlan, keys: readonly (readonly (string | null)[])[]): Promise<Map<string, (string | null)[]>> {
    this.reselects.push({ plan: plan.id, keys: keys.map((k) => [...k]) });
    const keyColumns = plan.keyInputs.map((i) => plan.sourceColumns[i]!);
    const found = new Map<string, (string | null)[]>();
    for (const key of keys) {
      const row = this.rows.find((r) => keyColumns.every((c, j) => r[c] === key[j]));
      if (row) found.set(JSON.stringify(key), plan.sourceColumns.map((c) => row[c] ?? null));
    }
    return Promise.resolve(found);
  }
}

/** A change's rows as column → value, so expectations do not depend on the compiler's column order. */
function named(changes: ApplyChange[]): unknown[] {
  const values = (table: TargetTable, row: readonly Value[]) => Object.fromEntries(table.columns.map((c, i) => [c.name, row[i]]));
  return changes.map((c) => {
    switch (c.kind) {
      case "upsert":
      case "insertRow":
        return { [c.kind]: c.table.id, ...values(c.table, c.values) };
      case "rekey":
        return { rekey: c.table.id, oldKey: c.oldKey, ...values(c.table, c.values) };
      case "updateRow":
        return { updateRow: c.table.id, old: values(c.table, c.old), ...values(c.table, c.values) };
      case "deleteRow":
        return { deleteRow: c.table.id, ...values(c.table, c.old) };
      case "delete":
        return { delete: c.table.id, key: c.key };
      case "truncate":
        return { truncate: c.tables.map((t) => t.id) };
      case "deleteOwned":
        return { deleteOwned: c.table.id, match: c.match };
      case "statement":
        return { statement: c.statement.text };
      case "unrouted":
        return { unrouted: c.table, key: c.key };
    }
  });
}

const hooks = new Map();

describe("a plain mapping (rename, constant)", () => {
  const users = table("public.users", [column("id", "integer", { notNull: true }), column("name", "text"), column("bio", "text")], ["id"]);
  const accounts = table("app.accounts", [column("id", "integer", { notNull: true }), column("full_name", "text"), column("bio", "text"), column("tenant", "text")], ["id"]);
  const [plan] = compilePlans([entry("public.users", "app.accounts", { columns: { full_name: "name", tenant: { value: "t1" } } })], [users], [accounts]);
  // No evaluator: nothing here needs the source database.
  const transformer = new ChangeTransformer({ hooks });

  it("maps inserts, updates and deletes", async () => {
    const out = await transformer.transform([
      change(plan!, "insert", { new: ["1", "Ann", "hi"] }),
      change(plan!, "update", { new: ["1", "Anne", "hey"] }),
      change(plan!, "delete", { old: ["1", null, null] }),
    ]);
    expect(named(out)).toEqual([
      { upsert: "app.accounts", id: "1", full_name: "Ann", bio: "hi", tenant: "t1" },
      { upsert: "app.accounts", id: "1", full_name: "Anne", bio: "hey", tenant: "t1" },
      { delete: "app.accounts", key: ["1"] },
    ]);
  });

  it("turns a key change into a delete of the old key and an upsert of the new row", async () => {
    const out = await transformer.transform([change(plan!, "update", { old: ["1", null, null], new: ["2", "Ann", "hi"] })]);
    expect(named(out)).toEqual([
      { delete: "app.accounts", key: ["1"] },
      { upsert: "app.accounts", id: "2", full_name: "Ann", bio: "hi", tenant: "t1" },
    ]);
  });

  it("leaves an unchanged TOAST value out (UNCHANGED), without asking the source", async () => {
    const out = await transformer.transform([change(plan!, "update", { new: ["1", "Ann", UNCHANGED] })]);
    expect(named(out)).toEqual([{ upsert: "app.accounts", id: "1", full_name: "Ann", bio: UNCHANGED, tenant: "t1" }]);
  });

  it("moves a row with an unchanged TOAST value to its new key in place (rekey)", async () => {
    const out = await transformer.transform([change(plan!, "update", { old: ["1", null, null], new: ["2", "Ann", UNCHANGED] })]);
    expect(named(out)).toEqual([{ rekey: "app.accounts", oldKey: ["1"], id: "2", full_name: "Ann", bio: UNCHANGED, tenant: "t1" }]);
  });

  it("takes an unchanged TOAST value from a whole old row (REPLICA IDENTITY FULL)", async () => {
    const out = await transformer.transform([change(plan!, "update", { old: ["1", "Ann", "long bio"], fullOld: true, new: ["1", "Anne", UNCHANGED] })]);
    expect(named(out)).toEqual([{ upsert: "app.accounts", id: "1", full_name: "Anne", bio: "long bio", tenant: "t1" }]);
  });

  it("passes ordered statements through in place", async () => {
    const statements: OrderedStatements = { type: "statements", statements: [{ text: "SELECT 1", values: [], rows: 0, table: "x", op: "update" }] };
    const out = await transformer.transform([change(plan!, "insert", { new: ["1", "Ann", null] }), statements, change(plan!, "delete", { old: ["1", null, null] })]);
    expect(named(out)).toEqual([
      { upsert: "app.accounts", id: "1", full_name: "Ann", bio: null, tenant: "t1" },
      { statement: "SELECT 1" },
      { delete: "app.accounts", key: ["1"] },
    ]);
  });

  it("refuses a delete without its old key", async () => {
    await expect(transformer.transform([change(plan!, "delete", {})])).rejects.toThrow("DELETE on public.users arrived without its old key");
  });

  it("truncates a target the source owns whole", async () => {
    const truncate: SourceTruncate = { type: "truncate", plans: [plan!] };
    expect(named(await transformer.transform([truncate]))).toEqual([{ truncate: ["app.accounts"] }]);
  });
});

describe("a filter (rows moving in and out)", () => {
  const keys = table("public.api_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text"), column("is_active", "boolean")], ["id"]);
  const active = table("app.active_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text")], ["id"]);
  const [plan] = compilePlans([entry("public.api_keys", "app.active_keys", { where: "is_active", exclude: ["is_active"] })], [keys], [active]);

  function setup(rows: Row[] = []) {
    const evaluator = new FakeEvaluator({ is_active: (row) => row.is_active === "t" }, rows);
    return { evaluator, transformer: new ChangeTransformer({ evaluator, hooks }) };
  }

  it("writes a row that passes and skips an insert that does not", async () => {
    const { transformer } = setup();
    const out = await transformer.transform([change(plan!, "insert", { new: ["1", "h1", "t"] }), change(plan!, "insert", { new: ["2", "h2", "f"] })]);
    expect(named(out)).toEqual([{ upsert: "app.active_keys", id: "1", key_hash: "h1" }]);
  });

  it("turns an update into the filter into an upsert and one out of it into a delete by key", async () => {
    const { transformer } = setup();
    const out = await transformer.transform([
      change(plan!, "update", { new: ["1", "h1", "t"] }), // moved in (or stayed in)
      change(plan!, "update", { new: ["2", "h2", "f"] }), // moved out (or stayed out: the delete is a no-op)
    ]);
    expect(named(out)).toEqual([
      { upsert: "app.active_keys", id: "1", key_hash: "h1" },
      { delete: "app.active_keys", key: ["2"] },
    ]);
  });

  it("deletes both keys of a row that changed key while leaving the filter", async () => {
    const { transformer } = setup();
    const out = await transformer.transform([change(plan!, "update", { old: ["1", null, null], new: ["2", "h", "f"] })]);
    expect(named(out)).toEqual([
      { delete: "app.active_keys", key: ["2"] },
      { delete: "app.active_keys", key: ["1"] },
    ]);
  });

  it("evaluates the whole run in one call per edge", async () => {
    const { evaluator, transformer } = setup();
    await transformer.transform([
      change(plan!, "insert", { new: ["1", "h1", "t"] }),
      change(plan!, "update", { old: ["1", null, null], new: ["2", "h1", "t"] }),
      change(plan!, "delete", { old: ["2", null, null] }),
    ]);
    // Three new rows and two old keys, in one evaluation.
    expect(evaluator.evaluations).toEqual([{ edge: "app.active_keys", rows: 4 }]);
  });

  it("re-reads an unchanged TOAST value the filter needs, then filters on it", async () => {
    const { evaluator, transformer } = setup([{ id: "1", key_hash: "h1", is_active: "t" }, { id: "2", key_hash: "h2", is_active: "f" }]);
    const out = await transformer.transform([
      change(plan!, "update", { new: ["1", "h1", UNCHANGED] }),
      change(plan!, "update", { new: ["2", "h2", UNCHANGED] }),
    ]);
    expect(evaluator.reselects).toEqual([{ plan: "public.api_keys", keys: [["1"], ["2"]] }]);
    expect(named(out)).toEqual([
      { upsert: "app.active_keys", id: "1", key_hash: "h1" },
      { delete: "app.active_keys", key: ["2"] },
    ]);
  });

  it("skips a row gone from the source since (its delete follows in the stream), deleting only a key it left", async () => {
    const { transformer } = setup([]);
    const out = await transformer.transform([
      change(plan!, "update", { new: ["1", "h1", UNCHANGED] }),
      change(plan!, "update", { old: ["2", null, null], new: ["3", "h3", UNCHANGED] }),
    ]);
    expect(named(out)).toEqual([{ delete: "app.active_keys", key: ["2"] }]);
  });

  it("needs an evaluator", async () => {
    const transformer = new ChangeTransformer({ hooks });
    await expect(transformer.transform([change(plan!, "insert", { new: ["1", "h1", "t"] })])).rejects.toThrow("no evaluator was configured");
  });
});

describe("which upserts insert their row (what a conflict-checked apply may bring back)", () => {
  const keys = table("public.api_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text"), column("is_active", "boolean")], ["id"]);
  const all = table("app.keys", [column("id", "integer", { notNull: true }), column("key_hash", "text"), column("is_active", "boolean")], ["id"]);
  const active = table("app.active_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text")], ["id"]);
  const low = table("app.low_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text")], ["id"]);
  const [plan] = compilePlans(
    [
      entry("public.api_keys", "app.keys"),
      entry("public.api_keys", "app.active_keys", { where: "is_active", exclude: ["is_active"] }),
      entry("public.api_keys", "app.low_keys", { where: "id < 10", exclude: ["is_active"] }),
    ],
    [keys],
    [all, active, low],
  );
  const transformer = new ChangeTransformer({ hooks, evaluator: new FakeEvaluator({ is_active: (row) => row.is_active === "t", "id < 10": (row) => Number(row.id) < 10 }) });
  /** Per target table, whether each of its upserts inserts. */
  const inserted = (out: ApplyChange[]) =>
    out.flatMap((c) => (c.kind === "upsert" ? [`${c.table.name}:${c.values[0] as string}:${c.inserted === true ? "insert" : "update"}`] : []));

  it("marks inserts, new keys and resyncs as inserting, and updates of a row that stays as not", async () => {
    const out = await transformer.transform([
      change(plan!, "insert", { new: ["1", "h", "t"] }),
      change(plan!, "update", { old: ["1", null, null], new: ["2", "h", "t"] }),
      { ...change(plan!, "update", { new: ["3", "h", "t"] }), resync: true },
    ]);
    expect(inserted(out)).toEqual([
      "keys:1:insert", "active_keys:1:insert", "low_keys:1:insert",
      "keys:2:insert", "active_keys:2:insert", "low_keys:2:insert",
      "keys:3:insert", "active_keys:3:insert", "low_keys:3:insert",
    ]);
  });

  it("knows an update stayed in a filter from a whole old row, or from the key the filter reads; otherwise it may have entered", async () => {
    const out = await transformer.transform([
      // No old tuple: the key (and so `id < 10`) did not change; is_active may have.
      change(plan!, "update", { new: ["4", "h2", "t"] }),
      // A whole old row says whether it passed.
      change(plan!, "update", { old: ["5", "h", "t"], fullOld: true, new: ["5", "h2", "t"] }),
      change(plan!, "update", { old: ["6", "h", "f"], fullOld: true, new: ["6", "h2", "t"] }),
    ]);
    expect(inserted(out)).toEqual([
      "keys:4:update", "active_keys:4:insert", "low_keys:4:update",
      "keys:5:update", "active_keys:5:update", "low_keys:5:update",
      "keys:6:update", "active_keys:6:insert", "low_keys:6:update",
    ]);
  });
});

describe("a merge with derived columns", () => {
  const apiKeys = table("public.api_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text"), column("is_active", "boolean")], ["id"]);
  const vendorKeys = table("public.vendor_api_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text"), column("revoked", "boolean")], ["id"]);
  const target = table("security_service.api_keys", [
    column("id", "uuid", { notNull: true }), column("source", "text", { notNull: true }), column("key_hash", "text"), column("status", "text"),
  ], ["id"]);
  const [api, vendor] = compilePlans(
    [
      entry("public.api_keys", "security_service.api_keys", {
        passthrough: false,
        columns: { id: { sql: "md5('api:' || id)::uuid" }, source: { value: "api" }, key_hash: "key_hash", status: { sql: "CASE WHEN is_active THEN 'active' END" } },
      }),
      entry("public.vendor_api_keys", "security_service.api_keys", {
        passthrough: false,
        columns: { id: { sql: "md5('vendor:' || id)::uuid" }, source: { value: "vendor" }, key_hash: { from: "key_hash" } },
      }),
    ],
    [apiKeys, vendorKeys],
    [target],
  );
  const evaluator = new FakeEvaluator({
    "md5('api:' || id)::uuid": (row) => `uuid(api:${row.id})`,
    "md5('vendor:' || id)::uuid": (row) => `uuid(vendor:${row.id})`,
    "CASE WHEN is_active THEN 'active' END": (row) => (row.is_active === "t" ? "active" : null),
  });
  const transformer = new ChangeTransformer({ evaluator, hooks });

  it("fills derived columns from the evaluator and keys rows by them", async () => {
    const out = await transformer.transform([
      change(api!, "insert", { new: ["1", "h1", "t"] }),
      change(vendor!, "insert", { new: ["1", "v1"] }),
      change(api!, "delete", { old: ["1", null, null] }),
    ]);
    expect(named(out)).toEqual([
      { upsert: "security_service.api_keys", id: "uuid(api:1)", source: "api", key_hash: "h1", status: "active" },
      { upsert: "security_service.api_keys", id: "uuid(vendor:1)", source: "vendor", key_hash: "v1" },
      { delete: "security_service.api_keys", key: ["uuid(api:1)"] },
    ]);
  });

  it("turns a TRUNCATE of one merged source into a delete of its own rows only", async () => {
    const out = await transformer.transform([{ type: "truncate", plans: [vendor!] }]);
    expect(named(out)).toEqual([{ deleteOwned: "security_service.api_keys", match: [{ column: "source", type: "text", value: "vendor" }] }]);
  });
});

describe("a keyless table (REPLICA IDENTITY FULL)", () => {
  const audit = table("public.audit", [column("actor", "text"), column("action", "text")], null);
  const [plan] = compilePlans([entry("public.audit", "app.audit")], [audit], [table("app.audit", audit.columns, null)]);
  const transformer = new ChangeTransformer({ hooks });

  it("matches rows on their whole old values", async () => {
    const out = await transformer.transform([
      change(plan!, "insert", { new: ["ann", "login"] }),
      change(plan!, "update", { old: ["ann", "login"], fullOld: true, new: ["ann", "logout"] }),
      change(plan!, "delete", { old: ["ann", "logout"], fullOld: true }),
    ]);
    expect(named(out)).toEqual([
      { insertRow: "app.audit", actor: "ann", action: "login" },
      { updateRow: "app.audit", old: { actor: "ann", action: "login" }, actor: "ann", action: "logout" },
      { deleteRow: "app.audit", actor: "ann", action: "logout" },
    ]);
  });
});
