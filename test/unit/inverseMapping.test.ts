import { describe, expect, it } from "vitest";
import type { CatalogTable } from "../../src/catalog/tableCatalog.js";
import type { TableMapping } from "../../src/config/index.js";
import { compileInverseMappings, invertMappings } from "../../src/plan/inverseMapping.js";
import { compileMapping } from "../../src/plan/mappingCompiler.js";
import { describeOrigin, type TablePlan } from "../../src/plan/plan.js";
import { column, compilePlans, entry, table } from "../fixtures/plans.js";

/** The forward plans compiled from hand-written catalogs, then inverted. */
function invert(mappings: TableMapping[], sources: CatalogTable[], targets: CatalogTable[]) {
  return invertMappings(compilePlans(mappings, sources, targets), mappings);
}

/** Inverts and compiles the inverse with the catalogs swapped, as compileReversePlan does with live ones. */
function reverse(mappings: TableMapping[], sources: CatalogTable[], targets: CatalogTable[]) {
  const inverse = invert(mappings, sources, targets);
  const compiled = compileInverseMappings({
    mappings: inverse.mappings,
    sourceTables: new Map(targets.map((t) => [t.id, t])),
    targetTables: new Map(sources.map((t) => [t.id, t])),
    snapshotFormat: "auto",
  });
  return { ...inverse, plans: compiled.plans, compileProblems: compiled.problems };
}

/** Each column of a reverse edge with its origin, as `pgferry plan --reverse` prints them. */
function origins(plans: readonly TablePlan[], from: string, to: string): Record<string, string> {
  const edge = plans.find((p) => p.id === from)!.edges.find((e) => e.table.id === to)!;
  return Object.fromEntries(edge.table.columns.map((c, i) => [c.name, describeOrigin(edge.origins[i]!)]));
}

const organizations = table("public.organizations", [
  column("id", "integer", { notNull: true, hasDefault: true }), column("name", "character varying(200)", { notNull: true }),
  column("plan_tier", "plan_tier", { notNull: true, hasDefault: true }), column("legacy_billing_id", "character varying(40)"),
], ["id"]);
const newOrganizations = table("shared.organizations", [column("id", "integer", { notNull: true }), column("name", "text", { notNull: true }), column("plan", "text", { notNull: true })], ["id"]);

const users = table("public.users", [
  column("id", "bigint", { notNull: true, hasDefault: true }), column("email", "character varying(255)", { notNull: true }), column("display_name", "text"),
  column("is_admin", "boolean", { notNull: true, hasDefault: true }), column("deleted_at", "timestamp with time zone"),
], ["id"]);
const accounts = table("auth.user_accounts", [
  column("id", "bigint", { notNull: true }), column("email", "text", { notNull: true }), column("email_normalized", "text", { notNull: true }),
  column("role", "text", { notNull: true }), column("deleted_at", "timestamp with time zone"),
], ["id"]);
const profiles = table("shared.profiles", [column("user_id", "bigint", { notNull: true }), column("display_name", "text")], ["user_id"]);
const accountsEntry = (reverse?: TableMapping["reverse"]) =>
  entry("public.users", "auth.user_accounts", {
    columns: { email_normalized: { sql: "lower(email)" }, role: { sql: "CASE WHEN is_admin THEN 'admin' ELSE 'member' END" } },
    exclude: ["display_name", "is_admin"],
    ...(reverse === undefined ? {} : { reverse }),
  });
const profilesEntry = entry("public.users", "shared.profiles", { passthrough: false, columns: { user_id: "id", display_name: "display_name" }, where: "deleted_at IS NULL" });

const apiKeys = table("public.api_keys", [column("id", "integer", { notNull: true, hasDefault: true }), column("key_hash", "text", { notNull: true }), column("is_active", "boolean")], ["id"]);
const vendorKeys = table("public.vendor_api_keys", [column("id", "integer", { notNull: true, hasDefault: true }), column("key_hash", "text", { notNull: true })], ["id"]);
const mergedKeys = table("sec.api_keys", [
  column("id", "uuid", { notNull: true }), column("source", "text", { notNull: true }), column("legacy_id", "text", { notNull: true }),
  column("key_hash", "text", { notNull: true }), column("status", "text"),
], ["id"], { uniqueKeys: [["id"], ["source", "legacy_id"]] });
/** The same, with REPLICA IDENTITY USING INDEX on its unique (source, legacy_id): a delete carries the route and the old id. */
const mergedKeysByIndex: CatalogTable = { ...mergedKeys, replicaIdentity: "i", identityKey: ["source", "legacy_id"] };
const apiKeysEntry = (reverse?: TableMapping["reverse"]) =>
  entry("public.api_keys", "sec.api_keys", {
    columns: { id: { sql: "md5('api_keys:' || id)::uuid" }, source: { value: "api_keys" }, legacy_id: { sql: "id::text" }, status: { sql: "CASE WHEN is_active THEN 'active' ELSE 'revoked' END" } },
    exclude: ["is_active"],
    ...(reverse === undefined ? {} : { reverse }),
  });
const vendorKeysEntry = (reverse?: TableMapping["reverse"]) =>
  entry("public.vendor_api_keys", "sec.api_keys", {
    passthrough: false,
    columns: { id: { sql: "md5('vendor_api_keys:' || id)::uuid" }, source: { value: "vendor's keys" }, legacy_id: { sql: "id::text" }, key_hash: "key_hash" },
    ...(reverse === undefined ? {} : { reverse }),
  });

describe("invertMappings", () => {
  it("inverts a move and its renames (same names too), and the compiler accepts text back into the enum it came from", () => {
    const mappings = [entry("public.organizations", "shared.organizations", { columns: { plan: "plan_tier" }, exclude: ["legacy_billing_id"] })];
    const result = reverse(mappings, [organizations], [newOrganizations]);
    expect(result.problems).toEqual([]);
    expect(result.notes).toEqual([]);
    expect(result.mappings).toEqual([
      { from: "shared.organizations", to: "public.organizations", columns: { plan_tier: "plan", id: "id", name: "name" }, exclude: [], passthrough: false, forwardIndex: 0, updateOnly: false },
    ]);
    expect(result.compileProblems).toEqual([]);
    expect(origins(result.plans, "shared.organizations", "public.organizations")).toEqual({ plan_tier: "plan", id: "id", name: "name" });
    const edge = result.plans[0]!.edges[0]!;
    expect(edge.table.keyIndexes).toEqual([1]);
    expect(edge.filter).toBeNull();
    // Forwards the same conversion is still refused: only the inverse of an automatic one is accepted.
    const forward = compileMapping({
      mappings: [entry("shared.organizations", "public.organizations", { passthrough: false, columns: { id: "id", name: "name", plan_tier: "plan" } })],
      sourceTables: new Map([[newOrganizations.id, newOrganizations]]),
      targetTables: new Map([[organizations.id, organizations]]),
      snapshotFormat: "auto",
    });
    expect(forward.problems).toEqual(['tables[0].columns.plan_tier: shared.organizations.plan is text but public.organizations.plan_tier is plan_tier; convert it with { sql: "plan::plan_tier" }']);
  });

  it("leaves out an entry marked reverse: false, and one with a hook but no reverse hook, saying how to add one", () => {
    const vendors = table("public.vendors", [column("id", "integer", { notNull: true }), column("website", "text")], ["id"]);
    const newVendors = table("v.vendors", vendors.columns, ["id"]);
    const result = invert(
      [entry("public.organizations", "shared.organizations", { columns: { plan: "plan_tier" }, exclude: ["legacy_billing_id"], reverse: false }), entry("public.vendors", "v.vendors", { hook: "/abs/normalize.mjs" })],
      [organizations, vendors],
      [newOrganizations, newVendors],
    );
    expect(result.mappings).toEqual([]);
    expect(result.problems).toEqual([]);
    expect(result.notes).toEqual([
      "tables[0] public.organizations → shared.organizations: forward-only (reverse: false)",
      "tables[1] public.vendors → v.vendors: forward-only: its hook reshapes rows in a way pgferry cannot invert; to carry changes back, add reverse: { hook: <module> } that turns a row of v.vendors, mapped back to public.vendors's columns, into the row to write",
    ]);
    const withHook = invert([entry("public.vendors", "v.vendors", { hook: "/abs/normalize.mjs", reverse: { columns: {}, forwardOnly: [], hook: "/abs/keep.mjs" } })], [vendors], [newVendors]);
    expect(withHook.notes).toEqual([]);
    expect(withHook.mappings[0]).toMatchObject({ from: "v.vendors", to: "public.vendors", hook: "/abs/keep.mjs", columns: { id: "id", website: "website" } });
  });

  it("routes a merged target back by its constants, reads derived keys back from the kept old id, and says so", () => {
    const mappings = [
      apiKeysEntry({ columns: { id: "legacy_id::integer", is_active: "status = 'active'" }, forwardOnly: [] }),
      vendorKeysEntry({ columns: { id: "legacy_id::integer" }, forwardOnly: [] }),
    ];
    const result = reverse(mappings, [apiKeys, vendorKeys], [mergedKeysByIndex]);
    expect(result.problems).toEqual([]);
    expect(result.mappings.map((m) => [m.from, m.to, m.where, m.columns])).toEqual([
      ["sec.api_keys", "public.api_keys", `"source" = 'api_keys'`, { key_hash: "key_hash", id: { sql: "legacy_id::integer" }, is_active: { sql: "status = 'active'" } }],
      ["sec.api_keys", "public.vendor_api_keys", `"source" = 'vendor''s keys'`, { key_hash: "key_hash", id: { sql: "legacy_id::integer" } }],
    ]);
    expect(result.notes).toEqual([
      "tables[0] public.api_keys → sec.api_keys: the key id of public.api_keys is computed from sec.api_keys (legacy_id::integer), not copied from its key; see docs/reverse.md (derived keys) for rows that have no such value and for deletes",
      "tables[1] public.vendor_api_keys → sec.api_keys: the key id of public.vendor_api_keys is computed from sec.api_keys (legacy_id::integer), not copied from its key; see docs/reverse.md (derived keys) for rows that have no such value and for deletes",
      `sec.api_keys is a merge: each row goes back to the source whose constants it carries (tables[0] where "source" = 'api_keys'; tables[1] where "source" = 'vendor''s keys'); a row that matches no carried-back entry's constants is reported as a conflict`,
    ]);
    // Compiled: one reverse source split two ways, each filtered by its constants and keyed by the old id.
    expect(result.compileProblems).toEqual([]);
    expect(result.plans).toHaveLength(1);
    const [toApi, toVendor] = result.plans[0]!.edges;
    expect(toApi!.filter).toEqual({ expr: `"source" = 'api_keys'`, refs: ["source"] });
    // A routing filter, not a forward one: a row that does not pass is the other edge's (changeTransformer.ts).
    expect([toApi!.filterMode, toVendor!.filterMode]).toEqual(["route", "route"]);
    expect(toApi!.table.keyIndexes).toEqual([1]);
    expect(origins(result.plans, "sec.api_keys", "public.vendor_api_keys")).toEqual({ key_hash: "key_hash", id: "legacy_id::integer (sql)" });
    expect([toApi!.index, toVendor!.index]).toEqual([0, 1]);
    expect(toApi!.ownership).toBeNull();
  });

  describe("the new table's replica identity", () => {
    const mappings = () => [
      apiKeysEntry({ columns: { id: "legacy_id::integer", is_active: "status = 'active'" }, forwardOnly: [] }),
      vendorKeysEntry({ columns: { id: "legacy_id::integer" }, forwardOnly: [] }),
    ];

    it("must carry what routes a delete and what its old key is computed from, or the fix is named", () => {
      // Identity (id): a delete on sec.api_keys carries only the uuid.
      const result = reverse(mappings(), [apiKeys, vendorKeys], [mergedKeys]);
      const fix = "ALTER TABLE sec.api_keys REPLICA IDENTITY USING INDEX <its unique index on (source, legacy_id)>, or ALTER TABLE sec.api_keys REPLICA IDENTITY FULL";
      expect(result.compileProblems).toEqual([
        `tables[0].reverse: a DELETE on sec.api_keys carries only its replica identity (id), not legacy_id (the key of public.api_keys is computed from it) or source (the routing filter reads it), so it could neither be routed back nor find its row in public.api_keys; ${fix}`,
        `tables[1].reverse: a DELETE on sec.api_keys carries only its replica identity (id), not legacy_id (the key of public.vendor_api_keys is computed from it) or source (the routing filter reads it), so it could neither be routed back nor find its row in public.vendor_api_keys; ${fix}`,
      ]);
    });

    it("says which columns of the fitting unique key must be made NOT NULL first, and offers FULL alone when none fits", () => {
      const nullable = table("sec.api_keys", mergedKeys.columns.map((c) => (c.name === "legacy_id" ? { ...c, notNull: false } : c)), ["id"], {
        uniqueKeys: [["id"], ["source", "legacy_id"]],
      });
      expect(reverse(mappings(), [apiKeys, vendorKeys], [nullable]).compileProblems[0]).toMatch(
        /; ALTER TABLE sec\.api_keys ALTER COLUMN legacy_id SET NOT NULL, REPLICA IDENTITY USING INDEX <its unique index on \(source, legacy_id\)>, or ALTER TABLE sec\.api_keys REPLICA IDENTITY FULL$/,
      );
      const noKey = table("sec.api_keys", mergedKeys.columns, ["id"]);
      expect(reverse(mappings(), [apiKeys, vendorKeys], [noKey]).compileProblems[0]).toMatch(
        /; ALTER TABLE sec\.api_keys REPLICA IDENTITY FULL \(no unique index of sec\.api_keys covers \(legacy_id, source\); one that did, over NOT NULL columns, could be its REPLICA IDENTITY USING INDEX\)$/,
      );
    });

    it("is enough when FULL: the inverse then keys on the primary key, which every old tuple carries", () => {
      const full: CatalogTable = { ...mergedKeys, replicaIdentity: "f", identityKey: null };
      const result = reverse(mappings(), [apiKeys, vendorKeys], [full]);
      expect(result.compileProblems).toEqual([]);
      const plan = result.plans[0]!;
      expect(plan.keyInputs.map((i) => plan.sourceColumns[i])).toEqual(["id"]);
      expect(plan.edges.map((e) => e.table.keyIndexes.map((k) => e.table.columns[k]!.name))).toEqual([["id"], ["id"]]);
    });

    it("needs nothing more for a key copied from the identity (a plain move)", () => {
      const result = reverse([entry("public.organizations", "shared.organizations", { columns: { plan: "plan_tier" }, exclude: ["legacy_billing_id"] })], [organizations], [newOrganizations]);
      expect(result.compileProblems).toEqual([]);
    });
  });

  it("names a merged source that is forward-only in the merge note", () => {
    const result = invert([apiKeysEntry(false), vendorKeysEntry({ columns: { id: "legacy_id::integer" }, forwardOnly: [] })], [apiKeys, vendorKeys], [mergedKeys]);
    expect(result.notes).toContain(
      `sec.api_keys is a merge: each row goes back to the source whose constants it carries (tables[0] (not carried back); tables[1] where "source" = 'vendor''s keys'); a row that matches no carried-back entry's constants is reported as a conflict`,
    );
  });

  describe("derived ({ sql }) columns", () => {
    it("refuses one whose source columns are not all written back, with the two ways out", () => {
      const result = invert([accountsEntry()], [users], [accounts]);
      expect(result.mappings).toEqual([]);
      expect(result.problems).toEqual([
        `tables[0].columns.role: role is derived ({ sql: "CASE WHEN is_admin THEN 'admin' ELSE 'member' END" }) from is_admin; give it a reverse expression (reverse.columns.is_admin: "<SQL over auth.user_accounts>") or list role in reverse.forwardOnly`,
      ]);
      const two = invert(
        [entry("public.users", "auth.user_accounts", { passthrough: false, columns: { id: "id", email: { sql: "email || display_name" }, email_normalized: "email", role: { value: "member" } } })],
        [users],
        [accounts],
      );
      expect(two.problems).toEqual([
        `tables[0].columns.email: email is derived ({ sql: "email || display_name" }) from display_name; give it a reverse expression (reverse.columns.display_name: "<SQL over auth.user_accounts>") or list email in reverse.forwardOnly`,
      ]);
      const both = invert(
        [entry("public.users", "auth.user_accounts", { passthrough: false, columns: { id: "id", email: { sql: "email || display_name" }, email_normalized: { sql: "lower(email)" }, role: { value: "member" } } })],
        [users],
        [accounts],
      );
      expect(both.problems[0]).toBe(
        `tables[0].columns.email: email is derived ({ sql: "email || display_name" }) from email, display_name; give each a reverse expression (reverse.columns.email: "<SQL over auth.user_accounts>", reverse.columns.display_name: "<SQL over auth.user_accounts>") or list email in reverse.forwardOnly`,
      );
    });

    it("is covered by a reverse expression, by forwardOnly, or by the copies it reads (lower(email) reads email)", () => {
      const covered = reverse([accountsEntry({ columns: { is_admin: "role = 'admin'" }, forwardOnly: [] })], [users], [accounts]);
      expect(covered.problems).toEqual([]);
      expect(covered.compileProblems).toEqual([]);
      expect(origins(covered.plans, "auth.user_accounts", "public.users")).toEqual({
        id: "id", email: "email", deleted_at: "deleted_at", is_admin: "role = 'admin' (sql)",
      });
      const forwardOnly = invert([accountsEntry({ columns: {}, forwardOnly: ["role"] })], [users], [accounts]);
      expect(forwardOnly.problems).toEqual([]);
      expect(forwardOnly.mappings[0]!.columns).toEqual({ id: "id", email: "email", deleted_at: "deleted_at" });
    });

    it("refuses a reverse expression for a column the reverse already copies back", () => {
      const result = invert([accountsEntry({ columns: { is_admin: "role = 'admin'", email: "lower(email)" }, forwardOnly: [] })], [users], [accounts]);
      expect(result.problems).toEqual([
        "tables[0].reverse.columns.email: email is already carried back from auth.user_accounts.email (the inverse of its copy); the reverse would write it twice: remove this entry",
      ]);
    });

    it("refuses forwardOnly naming anything but a column this entry derives", () => {
      const result = invert(
        [
          entry("public.users", "auth.user_accounts", {
            passthrough: false,
            columns: { id: "id", email: "email", email_normalized: { sql: "lower(email)" }, role: { value: "member" } },
            reverse: { columns: {}, forwardOnly: ["email", "role", "status", "email_normalized"] },
          }),
        ],
        [users],
        [accounts],
      );
      expect(result.problems).toEqual([
        "tables[0].reverse.forwardOnly: auth.user_accounts.email is a copy of email, and a copy is always carried back; list only columns derived by { sql }",
        "tables[0].reverse.forwardOnly: auth.user_accounts.role is a constant, which routes rows back instead; list only columns derived by { sql }",
        "tables[0].reverse.forwardOnly: this entry writes no column status of auth.user_accounts; list only columns derived by { sql }",
      ]);
    });
  });

  describe("the source key", () => {
    it("must be written back; the problem points at a target column that keeps it", () => {
      const result = invert([apiKeysEntry({ columns: { is_active: "status = 'active'" }, forwardOnly: ["id", "legacy_id"] })], [apiKeys], [mergedKeys]);
      expect(result.problems).toEqual([
        `tables[0].reverse: the key column public.api_keys.id is not carried back, so a change in sec.api_keys cannot find its row in public.api_keys; read it back from a column that keeps it, e.g. reverse.columns.id: "legacy_id::integer"`,
      ]);
      const noKeeper = invert(
        [entry("public.api_keys", "sec.api_keys", {
          passthrough: false,
          columns: { id: { sql: "md5('k:' || id)::uuid" }, source: { value: "k" }, legacy_id: { value: "-" }, key_hash: "key_hash" },
          reverse: { columns: {}, forwardOnly: ["id"] },
        })],
        [apiKeys],
        [mergedKeys],
      );
      expect(noKeeper.problems).toEqual([
        `tables[0].reverse: the key column public.api_keys.id is not carried back, so a change in sec.api_keys cannot find its row in public.api_keys; keep it in a column of sec.api_keys (e.g. legacy_id: { sql: "id::text" }) and read it back with reverse.columns.id: "legacy_id::integer"`,
      ]);
    });

    it("is not needed for a keyless (REPLICA IDENTITY FULL) source", () => {
      const audit = table("public.audit", [column("actor", "text"), column("action", "text", { notNull: true })], null);
      const result = invert([entry("public.audit", "shared.audit")], [audit], [table("shared.audit", audit.columns, null)]);
      expect(result.problems).toEqual([]);
      expect(result.mappings[0]!.columns).toEqual({ actor: "actor", action: "action" });
    });
  });

  describe("splits", () => {
    it("carry a part that lacks a required column as updates only, join the parts on the key, and drop the forward filter", () => {
      const mappings = [accountsEntry({ columns: { is_admin: "role = 'admin'" }, forwardOnly: [] }), profilesEntry];
      const result = reverse(mappings, [users], [accounts, profiles]);
      expect(result.problems).toEqual([]);
      expect(result.mappings.map((m) => [m.from, m.updateOnly, m.where])).toEqual([
        ["auth.user_accounts", false, undefined],
        ["shared.profiles", true, undefined],
      ]);
      expect(result.notes).toEqual([
        "tables[1] public.users → shared.profiles: carried back as updates only: it does not write email (NOT NULL without a default in public.users), so a row new in shared.profiles is not inserted; a change updates the existing row, and deletes are not carried back",
      ]);
      // Both parts write public.users.id: a reverse merge of one row's parts needs no discriminator.
      expect(result.compileProblems).toEqual([]);
      const profileEdge = result.plans.find((p) => p.id === "shared.profiles")!.edges[0]!;
      expect(profileEdge.table).toMatchObject({ id: "public.users", updateOnly: true, keyIndexes: [0] });
      expect(profileEdge.index).toBe(1);
      expect(result.plans.find((p) => p.id === "auth.user_accounts")!.edges[0]!.table.updateOnly).toBeUndefined();
    });

    it("note a non-key column written back by two parts", () => {
      const withName = table("auth.user_accounts", [...accounts.columns, column("display_name", "text")], ["id"]);
      const mappings = [
        entry("public.users", "auth.user_accounts", {
          columns: { email_normalized: { sql: "lower(email)" }, role: { sql: "CASE WHEN is_admin THEN 'admin' ELSE 'member' END" } },
          exclude: ["is_admin"],
          reverse: { columns: { is_admin: "role = 'admin'" }, forwardOnly: [] },
        }),
        profilesEntry,
      ];
      expect(invert(mappings, [users], [withName, profiles]).notes).toContain("public.users.display_name: written back by tables[0] and tables[1]; the later change wins");
    });
  });

  it("carries a column copied to two target columns back from the first, and says so", () => {
    const twice = table("auth.user_accounts", [...accounts.columns, column("login", "text")], ["id"]);
    const result = invert(
      [entry("public.users", "auth.user_accounts", { passthrough: false, columns: { id: "id", email: "email", login: "email", email_normalized: "email", role: { value: "member" } } })],
      [users],
      [twice],
    );
    expect(result.mappings[0]!.columns).toEqual({ id: "id", email: "email" });
    expect(result.notes).toEqual([
      "tables[0] public.users → auth.user_accounts: email is copied to email and login; it is carried back from email",
      "tables[0] public.users → auth.user_accounts: email is copied to email and email_normalized; it is carried back from email",
    ]);
  });

  it("names the forward entry in the compiler's problems about the inverse", () => {
    const result = reverse([accountsEntry({ columns: { is_admin: "role = 'admin'", nickname: "email" }, forwardOnly: [] }), profilesEntry], [users], [accounts, profiles]);
    expect(result.problems).toEqual([]);
    expect(result.compileProblems).toEqual(["tables[0].reverse.columns.nickname: target table public.users has no column nickname"]);
  });
});
