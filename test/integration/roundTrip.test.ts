/**
 * The harness gives real servers: a slot can be created on the source, and values that JavaScript
 * would mangle (int8 above 2^53, numeric(30,10), timestamptz microseconds, jsonb, vector(1536))
 * travel source → target through a binary COPY pipe unchanged, compared as text.
 */
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { waitFor } from "../harness/waitFor.js";

const DDL = `CREATE TABLE exact_values (
  id int8 PRIMARY KEY,
  amount numeric(30,10) NOT NULL,
  happened_at timestamptz NOT NULL,
  doc jsonb NOT NULL,
  embedding vector(1536) NOT NULL
)`;

const vector = Array.from({ length: 1536 }, (_, i) => ((i * 7919) % 1000) / 997 - 0.5);
const VALUES = {
  id: "9007199254740993", // 2^53 + 1: a JS number would round it
  amount: "12345678901234567890.0123456789",
  happened_at: "2026-11-24 13:45:12.123456+00",
  doc: '{"a": [1, 2.50, "x"], "big": 9007199254740993, "nested": {"k": null}}',
  embedding: `[${vector.join(",")}]`,
};

const SELECT_TEXT = `SELECT id::text, amount::text, happened_at::text, doc::text, embedding::text FROM exact_values ORDER BY id`;

describe("test harness round trip", () => {
  let db: TestDatabases;

  beforeAll(async () => {
    db = await createTestDatabases("round_trip");
    await db.source.query(DDL);
    await db.target.query(DDL);
  });
  afterAll(async () => db?.drop());

  it("runs the source with wal_level=logical and pgvector on both sides", async () => {
    const { rows: [wal] } = await db.source.query<{ wal_level: string }>("SHOW wal_level");
    expect(wal?.wal_level).toBe("logical");
    for (const pool of [db.source, db.target]) {
      const { rows } = await pool.query<{ extversion: string }>("SELECT extversion FROM pg_extension WHERE extname = 'vector'");
      expect(rows[0]?.extversion).toMatch(/^0\.\d+\.\d+$/);
    }
  });

  it("creates a logical slot and sees committed changes in it", async () => {
    await db.source.query("CREATE PUBLICATION harness_pub FOR TABLE exact_values");
    const repl = new pg.Client({ connectionString: db.sourceUrl, replication: "database" } as pg.ClientConfig);
    await repl.connect();
    try {
      const { rows } = await repl.query<{ slot_name: string; consistent_point: string }>(
        "CREATE_REPLICATION_SLOT harness_slot LOGICAL pgoutput NOEXPORT_SNAPSHOT",
      );
      expect(rows[0]?.slot_name).toBe("harness_slot");
      expect(rows[0]?.consistent_point).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    } finally {
      await repl.end();
    }
    await db.source.query(
      `INSERT INTO exact_values VALUES ($1, $2, $3, $4, $5)`,
      [VALUES.id, VALUES.amount, VALUES.happened_at, VALUES.doc, VALUES.embedding],
    );
    const kinds = await waitFor(
      async () =>
        (
          await db.source.query<{ kind: string }>(
            `SELECT chr(get_byte(data, 0)) AS kind FROM pg_logical_slot_peek_binary_changes('harness_slot', NULL, NULL,
               'proto_version', '1', 'publication_names', 'harness_pub')`,
          )
        ).rows.map((r) => r.kind).join(""),
      { description: "the insert's transaction in the slot", until: (k) => k.endsWith("C") },
    );
    // Begin, Type (vector is not a built-in type, so its Type comes before the Relation), Relation, Insert, Commit
    expect(kinds).toBe("BYRIC");
  });

  it("round-trips every value exactly through a binary COPY pipe", async () => {
    const sourceClient = await db.source.connect();
    const targetClient = await db.target.connect();
    try {
      await pipeline(
        sourceClient.query(copyTo("COPY exact_values TO STDOUT (FORMAT binary)")),
        targetClient.query(copyFrom("COPY exact_values FROM STDIN (FORMAT binary)")),
      );
    } finally {
      sourceClient.release();
      targetClient.release();
    }
    const source = await db.source.query(SELECT_TEXT);
    const target = await db.target.query(SELECT_TEXT);
    expect(target.rows).toEqual(source.rows);
    const row = target.rows[0] as Record<string, string>;
    expect(row.id).toBe(VALUES.id);
    expect(row.amount).toBe(VALUES.amount);
    expect(row.happened_at).toBe(VALUES.happened_at);
    expect(JSON.parse(row.doc!.replace(/9007199254740993/, '"big"'))).toMatchObject({ a: [1, 2.5, "x"] });
    expect(row.doc).toContain('"big": 9007199254740993');
    expect(row.embedding).toBe(
      (await db.source.query<{ v: string }>("SELECT $1::vector::text AS v", [VALUES.embedding])).rows[0]?.v,
    );
    expect(row.embedding!.split(",")).toHaveLength(1536);
  });
});
