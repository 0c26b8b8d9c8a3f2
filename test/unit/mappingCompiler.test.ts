import { describe, expect, it } from "vitest";
import type { CatalogTable } from "../../src/catalog/tableCatalog.js";
import type { TableMapping } from "../../src/config/index.js";
import { column, entry, table } from "../fixtures/plans.js";
import { compileMapping } from "../../src/plan/mappingCompiler.js";
import { referencedColumns } from "../../src/plan/sqlRefs.js";

const apiKeys = table("public.api_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text"), column("is_active", "boolean")], ["id"]);
const vendorKeys = table("public.vendor_api_keys", [column("id", "integer", { notNull: true }), column("key_hash", "text"), column("revoked", "boolean")], ["id"]);
const targetKeys = table("security_service.api_keys", [
  column("id", "uuid", { notNull: true }), column("source", "text", { notNull: true }), column("key_hash", "text"), column("status", "text"),
], ["id"]);

function compile(mappings: TableMapping[], sources: CatalogTable[], targets: CatalogTable[], snapshotFormat: "auto" | "text" = "auto") {
  return compileMapping({
    mappings,
    sourceTables: new Map(sources.map((t) => [t.id, t])),
    targetTables: new Map(targets.map((t) => [t.id, t])),
    snapshotFormat,
  });
}

describe("referencedColumns", () => {
  it("finds columns as identifiers, not inside strings or longer names", () => {
    const columns = ["id", "is_active", "name", "Mixed"];
    expect(referencedColumns("CASE WHEN is_active THEN 'id name' ELSE upper(\"Mixed\") END", columns)).toEqual(["is_active", "Mixed"]);
    expect(referencedColumns("md5('x:' || ID)::uuid", columns)).toEqual(["id"]);
    expect(referencedColumns("ids + name_2", columns)).toEqual([]);
  });
});

describe("compileMapping", () => {
  it("passes identical columns through as a binary copy and keeps the source key", () => {
    const target = table("app.api_keys", apiKeys.columns, ["id"]);
    const { plans, problems } = compile([entry("public.api_keys", "app.api_keys")], [apiKeys], [target]);
    expect(problems).toEqual([]);
    const edge = plans[0]!.edges[0]!;
    expect(edge.copyFormat).toBe("binary");
    expect(edge.evaluated).toBe(false);
    expect(edge.table.keyIndexes).toEqual([0]);
    expect(edge.origins.map((o) => o.kind)).toEqual(["column", "column", "column"]);
    expect(plans[0]!.sourceColumns).toEqual(["id", "key_hash", "is_active"]);
  });

  it("compiles a merge with derived keys and per-source discriminators", () => {
    const { plans, problems } = compile(
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
      [targetKeys],
    );
    expect(problems).toEqual([]);
    const [api, vendor] = plans.map((p) => p.edges[0]!);
    expect(api!.ownership).toEqual([{ column: "source", type: "text", value: "api" }]);
    expect(vendor!.ownership).toEqual([{ column: "source", type: "text", value: "vendor" }]);
    expect(api!.copyFormat).toBe("text");
    expect(api!.evaluated).toBe(true);
    expect(api!.origins[0]).toEqual({ kind: "sql", expr: "md5('api:' || id)::uuid", refs: ["id"], input: -1 });
    expect(plans[0]!.sourceColumns).toEqual(["id", "key_hash", "is_active"]);
  });

  it("refuses merged sources that cannot be told apart or whose raw keys could collide", () => {
    const target = table("app.keys", [column("id", "integer", { notNull: true }), column("key_hash", "text")], ["id"]);
    const { problems } = compile(
      [entry("public.api_keys", "app.keys", { exclude: ["is_active"] }), entry("public.vendor_api_keys", "app.keys", { exclude: ["revoked"] })],
      [apiKeys, vendorKeys],
      [target],
    );
    expect(problems).toEqual([
      "tables[0]: app.keys is fed by several sources (tables[0], tables[1]); give each a constant discriminator column (columns: { source: { value: api_keys } }) so a truncate or re-copy of one source touches only its rows",
      "tables[1]: app.keys is fed by several sources (tables[0], tables[1]); give each a constant discriminator column (columns: { source: { value: vendor_api_keys } }) so a truncate or re-copy of one source touches only its rows",
      "tables[1]: the key (id) of app.keys comes unchanged from public.vendor_api_keys, as it does from another source: keys could collide; derive it (for example { sql: \"md5('public.vendor_api_keys:' || id)::uuid\" }) or put the discriminator in the key",
    ]);
  });

  it("splits one source into two targets, each keyed from the source key", () => {
    const users = table("public.users", [column("id", "bigint", { notNull: true }), column("email", "text"), column("bio", "text")], ["id"]);
    const accounts = table("auth.accounts", [column("id", "bigint", { notNull: true }), column("email", "text")], ["id"]);
    const profiles = table("shared.profiles", [column("user_id", "bigint", { notNull: true }), column("bio", "text")], ["user_id"]);
    const { plans, problems } = compile(
      [entry("public.users", "auth.accounts", { exclude: ["bio"] }), entry("public.users", "shared.profiles", { passthrough: false, columns: { user_id: "id", bio: "bio" } })],
      [users],
      [accounts, profiles],
    );
    expect(problems).toEqual([]);
    expect(plans).toHaveLength(1);
    expect(plans[0]!.edges.map((e) => e.table.id)).toEqual(["auth.accounts", "shared.profiles"]);
    expect(plans[0]!.edges[1]!.table.keyIndexes).toEqual([0]);
  });

  it("refuses a target key that does not come from the source key", () => {
    const users = table("public.users", [column("id", "bigint", { notNull: true }), column("email", "text")], ["id"]);
    const byEmail = table("auth.accounts", [column("id", "bigint"), column("email", "text", { notNull: true })], ["email"]);
    const { problems } = compile([entry("public.users", "auth.accounts")], [users], [byEmail]);
    expect(problems).toEqual([
      "tables[0]: auth.accounts needs a primary key or unique index on (id), the key of public.users, so that changes can find their rows (its keys (email) are not all derived from the source key)",
    ]);
  });

  it("reports type mismatches with the conversion to write, and accepts text-compatible casts", () => {
    const source = table("public.s", [column("id", "integer", { notNull: true }), column("kind", "public.kind_enum"), column("doc", "json"), column("n", "integer")], ["id"]);
    const target = table("app.t", [column("id", "integer", { notNull: true }), column("kind", "text"), column("doc", "jsonb"), column("n", "uuid")], ["id"]);
    expect(compile([entry("public.s", "app.t")], [source], [target]).problems).toEqual(["tables[0]: column n is integer in public.s but uuid in app.t"]);
    expect(compile([entry("public.s", "app.t", { columns: { n: "id" } })], [source], [target]).problems).toEqual([
      'tables[0].columns.n: public.s.id is integer but app.t.n is uuid; convert it with { sql: "id::uuid" }',
    ]);
  });

  it("does not pass a renamed column through under its old name, and honours exclude", () => {
    const source = table("public.m", [column("id", "bigint", { notNull: true }), column("memory_type", "text"), column("legacy", "boolean")], ["id"]);
    const target = table("sec.m", [column("id", "bigint", { notNull: true }), column("type", "text")], ["id"]);
    const { plans, problems } = compile([entry("public.m", "sec.m", { columns: { type: "memory_type" }, exclude: ["legacy"] })], [source], [target]);
    expect(problems).toEqual([]);
    expect(plans[0]!.edges[0]!.table.columns.map((c) => c.name)).toEqual(["type", "id"]);
    expect(plans[0]!.sourceColumns).toEqual(["id", "memory_type"]);
  });

  it("reads every source column for a keyless (REPLICA IDENTITY FULL) table and marks filters as evaluated", () => {
    const audit = table("public.audit", [column("actor", "text"), column("action", "text")], null);
    const target = table("app.audit", audit.columns, null);
    const { plans, problems } = compile([entry("public.audit", "app.audit", { where: "actor <> 'system'" })], [audit], [target], "text");
    expect(problems).toEqual([]);
    const edge = plans[0]!.edges[0]!;
    expect(edge.table.keyIndexes).toEqual([]);
    expect(edge.filter).toEqual({ expr: "actor <> 'system'", refs: ["actor"] });
    expect(edge.evaluated).toBe(true);
    expect(edge.copyFormat).toBe("text");
  });

  describe("generated and identity columns", () => {
    const orders = table("public.orders", [column("id", "bigint", { notNull: true }), column("price", "numeric"), column("qty", "integer")], ["id"], {
      generated: [{ name: "total", type: "numeric", expr: "(price * (qty)::numeric)" }],
    });

    it("evaluates a mapped source generated column from its expression (pgoutput does not carry it), on both paths", () => {
      const target = table("billing.orders", [...orders.columns, column("total", "numeric")], ["id"]);
      const { plans, problems } = compile([entry("public.orders", "billing.orders")], [orders], [target]);
      expect(problems).toEqual([]);
      const edge = plans[0]!.edges[0]!;
      const total = edge.table.columns.findIndex((c) => c.name === "total");
      expect(edge.origins[total]).toMatchObject({ kind: "sql", expr: "(price * (qty)::numeric)", refs: ["price", "qty"] });
      expect(edge.evaluated).toBe(true);
      expect(edge.copyFormat).toBe("text");
      // Renamed, it is evaluated the same way.
      const renamed = table("billing.orders2", [...orders.columns, column("amount", "numeric")], ["id"]);
      const second = compile([entry("public.orders", "billing.orders2", { columns: { amount: "total" } })], [orders], [renamed]);
      expect(second.problems).toEqual([]);
      expect(second.plans[0]!.edges[0]!.origins.find((o) => o.kind === "sql")).toMatchObject({ expr: "(price * (qty)::numeric)" });
    });

    it("leaves a column generated on both sides to each side, and never writes a target generated column", () => {
      const target = table("billing.orders", orders.columns, ["id"], { generated: [{ name: "total", type: "numeric", expr: "(price * (qty)::numeric)" }] });
      const { plans, problems } = compile([entry("public.orders", "billing.orders")], [orders], [target]);
      expect(problems).toEqual([]);
      expect(plans[0]!.edges[0]!.table.columns.map((c) => c.name)).toEqual(["id", "price", "qty"]);
      expect(plans[0]!.edges[0]!.copyFormat).toBe("binary");
    });

    it("refuses writing to a target generated column, and says how to let the target compute it", () => {
      const plainSource = table("public.orders", [...orders.columns, column("total", "numeric")], ["id"]);
      const target = table("billing.orders", orders.columns, ["id"], { generated: [{ name: "total", type: "numeric", expr: "(price * (qty)::numeric)" }] });
      expect(compile([entry("public.orders", "billing.orders")], [plainSource], [target]).problems).toEqual([
        "tables[0]: billing.orders.total is a generated column (GENERATED ALWAYS AS ((price * (qty)::numeric)) STORED), so the source's public.orders.total cannot be written to it; list total in exclude to let the target compute it",
      ]);
      expect(compile([entry("public.orders", "billing.orders", { columns: { total: { sql: "price * 2" } } })], [plainSource], [target]).problems).toContain(
        "tables[0].columns.total: billing.orders.total is a generated column (GENERATED ALWAYS AS ((price * (qty)::numeric)) STORED): the target computes it and refuses a written value; remove it from columns",
      );
      expect(compile([entry("public.orders", "billing.orders", { exclude: ["total"] })], [plainSource], [target]).problems).toEqual([]);
    });

    it("refuses SQL that reads a source generated column, giving the expression to write instead", () => {
      const target = table("billing.orders", [...orders.columns, column("big", "boolean")], ["id"]);
      const { problems } = compile([entry("public.orders", "billing.orders", { columns: { big: { sql: "total > 100" } }, exclude: ["total"], where: "total > 0" })], [orders], [target]);
      expect(problems).toEqual([
        "tables[0].columns.big: the SQL reads public.orders.total, a generated column, which the stream does not carry; write its expression instead: ((price * (qty)::numeric))",
        "tables[0].where: the SQL reads public.orders.total, a generated column, which the stream does not carry; write its expression instead: ((price * (qty)::numeric))",
      ]);
    });

    it("accepts a GENERATED ALWAYS identity as the key, and refuses one that an update would have to write", () => {
      const users = table("public.users", [column("id", "bigint", { notNull: true }), column("seq", "bigint"), column("name", "text")], ["id"]);
      const keyed = table("auth.users", [column("id", "bigint", { notNull: true, identity: "a", hasDefault: true }), column("seq", "bigint"), column("name", "text")], ["id"]);
      expect(compile([entry("public.users", "auth.users")], [users], [keyed]).problems).toEqual([]);
      const nonKey = table("auth.users", [column("id", "bigint", { notNull: true }), column("seq", "bigint", { identity: "a" }), column("name", "text")], ["id"]);
      expect(compile([entry("public.users", "auth.users")], [users], [nonKey]).problems).toEqual([
        "tables[0]: auth.users.seq is GENERATED ALWAYS AS IDENTITY but not the key pgferry matches rows on, so updates could not write it; ALTER TABLE auth.users ALTER COLUMN seq SET GENERATED BY DEFAULT, or exclude it",
      ]);
      const byDefault = table("auth.users", [column("id", "bigint", { notNull: true }), column("seq", "bigint", { identity: "d" }), column("name", "text")], ["id"]);
      expect(compile([entry("public.users", "auth.users")], [users], [byDefault]).problems).toEqual([]);
    });
  });
});
