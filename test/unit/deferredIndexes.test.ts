/**
 * Which of a target table's indexes the initial copy may drop and build after its rows are in
 * (snapshot.deferIndexes), from catalog rows as catalog/indexCatalog.ts reads them, and the
 * statements that give a rebuilt index back what its definition does not say.
 */
import { describe, expect, it } from "vitest";
import { deferrableIndexes, keepReason, restoreStatements, type IndexedTable, type IndexRow } from "../../src/catalog/indexCatalog.js";

function index(name: string, overrides: Partial<IndexRow> = {}): IndexRow {
  return {
    name, definition: `CREATE INDEX ${name} ON app.t USING btree (a)`, tablespace: null, method: "btree", unique: false, primary: false,
    exclusion: false, replicaIdentity: false, constraint: false, valid: true, partitioned: false, clustered: false, comment: null, statistics: [],
    ...overrides,
  };
}

const table = (indexes: IndexRow[], overrides: Partial<IndexedTable> = {}): IndexedTable => ({ kind: "r", owned: true, owner: "app", indexes, ...overrides });

describe("keepReason", () => {
  it("keeps every index a constraint, an upsert or the replica identity relies on", () => {
    expect(keepReason(index("t_pkey", { primary: true, unique: true, constraint: true }))).toBe("primary key");
    // A unique index without a constraint still arbitrates the stream's ON CONFLICT.
    expect(keepReason(index("t_email_key", { unique: true }))).toBe("unique");
    expect(keepReason(index("t_period_excl", { exclusion: true, constraint: true, method: "gist" }))).toBe("exclusion");
    expect(keepReason(index("t_ident", { replicaIdentity: true }))).toBe("replica identity");
    expect(keepReason(index("t_used", { constraint: true }))).toBe("constraint");
  });

  it("keeps an invalid index (a failed CREATE INDEX CONCURRENTLY) and partitioned index trees as they are", () => {
    expect(keepReason(index("t_half", { valid: false }))).toBe("invalid");
    expect(keepReason(index("t_part_idx", { partitioned: true }))).toBe("partitioned");
  });

  it("defers plain btree, partial, expression, GIN and vector indexes", () => {
    const plain = [
      index("t_a"),
      index("t_active", { definition: "CREATE INDEX t_active ON app.t USING btree (a) WHERE (status = 'active'::text)" }),
      index("t_lower", { definition: "CREATE INDEX t_lower ON app.t USING btree (lower(email))" }),
      index("t_tags", { method: "gin" }),
      index("t_embedding_hnsw", { method: "hnsw", definition: "CREATE INDEX t_embedding_hnsw ON app.t USING hnsw (embedding public.vector_cosine_ops) WITH (m='16')" }),
      index("t_embedding_ivf", { method: "ivfflat" }),
    ];
    for (const i of plain) expect(keepReason(i)).toBeNull();
  });
});

describe("deferrableIndexes", () => {
  it("picks the deferrable indexes of a plain table and leaves the others", () => {
    const all = [index("t_pkey", { primary: true, unique: true, constraint: true }), index("t_a"), index("t_u", { unique: true }), index("t_hnsw", { method: "hnsw" })];
    expect(deferrableIndexes(table(all)).map((i) => i.name)).toEqual(["t_a", "t_hnsw"]);
  });

  it("defers nothing on a partitioned table or a table that does not exist", () => {
    expect(deferrableIndexes(table([index("t_a")], { kind: "p" }))).toEqual([]);
    expect(deferrableIndexes(table([], { kind: null }))).toEqual([]);
  });
});

describe("restoreStatements", () => {
  it("is empty for an index whose definition says all", () => {
    expect(restoreStatements({ schema: "app", name: "t" }, index("t_a"))).toEqual([]);
  });

  it("gives back statistics targets, the comment (quoted) and CLUSTER ON", () => {
    const statements = restoreStatements(
      { schema: "app", name: "Orders" },
      index("Orders_expr", { statistics: [{ column: 2, target: 500 }], comment: "it's for the dashboard", clustered: true }),
    );
    expect(statements).toEqual([
      'ALTER INDEX "app"."Orders_expr" ALTER COLUMN 2 SET STATISTICS 500',
      `COMMENT ON INDEX "app"."Orders_expr" IS 'it''s for the dashboard'`,
      'ALTER TABLE "app"."Orders" CLUSTER ON "Orders_expr"',
    ]);
  });
});
