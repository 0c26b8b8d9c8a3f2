/**
 * The apply statements' two ways of carrying a column's values (joined by a separator and split by
 * string_to_array, or a text[] when a value makes the separator ambiguous) land the same rows on
 * real PostgreSQL, for values that test quoting, NULL marks, separators and empty strings.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Applier } from "../../src/apply/applier.js";
import { endpoint } from "../../src/sql/endpoint.js";
import { deleteStatement, insertRowsStatement, updateRowsStatement, upsertStatement, type Cell } from "../../src/apply/statements.js";
import type { Statement } from "../../src/apply/types.js";
import type { TargetTable } from "../../src/plan/targetTable.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";

let db: TestDatabases;
let applier: Applier;

const table = (name: string, keyIndexes: number[]): TargetTable => ({
  id: `app.${name}`,
  schema: "app",
  name,
  columns: [
    { name: "id", type: "integer" },
    { name: "t", type: "text" },
    { name: "j", type: "jsonb" },
    { name: "v", type: "vector(3)" },
  ],
  keyIndexes,
});
const keyed = table("keyed", [0]);
const keyless = table("keyless", []);

/** Values that trip up array literals and delimited strings alike. */
const TRICKY: Cell[] = ["", "NULL", null, 'say "hi"', "back\\slash", "{brace,comma}", "tab\tline\nend", "ünïcødé ✓", "  padded  ", "E'x'"];

function rowsOf(texts: readonly Cell[], from = 1): Cell[][] {
  return texts.map((t, i) => [String(from + i), t, t === null ? null : JSON.stringify({ t }), `[${i},${i / 2},-${i}]`]);
}

async function run(statement: Statement): Promise<void> {
  await applier.execute([statement]);
  await applier.commit({ commitLsn: 0n, endLsn: 0n, commitTime: null });
}

/** The table's rows as text, in key order. */
async function contents(name: string): Promise<string[][]> {
  const { rows } = await db.target.query<{ k: string; tt: string | null; jt: string | null; vt: string }>(
    `SELECT id::text AS k, t AS tt, j::text AS jt, v::text AS vt FROM app.${name} ORDER BY id, t`,
  );
  return rows.map((r) => [r.k, r.tt, r.jt, r.vt] as string[]);
}

/** What the rows must look like, parsed by PostgreSQL one parameter at a time. */
async function expected(rows: readonly Cell[][]): Promise<string[][]> {
  const out: string[][] = [];
  for (const row of rows) {
    const { rows: parsed } = await db.target.query<{ id: string; t: string | null; j: string | null; v: string }>(
      "SELECT $1::integer::text AS id, $2::text AS t, $3::jsonb::text AS j, $4::vector(3)::text AS v",
      row,
    );
    const p = parsed[0]!;
    out.push([p.id, p.t, p.j, p.v] as string[]);
  }
  return out;
}

beforeAll(async () => {
  db = await createTestDatabases("apply_statements");
  await db.target.query(`CREATE SCHEMA app;
    CREATE TABLE app.keyed (id integer PRIMARY KEY, t text, j jsonb, v vector(3));
    CREATE TABLE app.keyless (id integer, t text, j jsonb, v vector(3));`);
  // No state schema here: the checkpoint write is a no-op.
  applier = await Applier.connect({ target: endpoint("target", db.targetUrl), applicationName: "pgferry-test", writeCheckpoint: () => Promise.resolve() });
});
afterAll(async () => {
  await applier?.close();
  await db?.drop();
});

describe("apply statements on PostgreSQL", () => {
  it("a column of binary values (a binary stream's opaque column) goes as one binary array of its type, NULLs included", async () => {
    const rows = rowsOf(TRICKY, 100);
    // The binary send format of each text and vector, as pgoutput's binary mode sends it.
    const binary: Cell[][] = [];
    for (const row of rows) {
      const { rows: sent } = await db.target.query<{ t: Buffer | null; v: Buffer }>("SELECT textsend($1::text) AS t, vector_send($2::vector(3)) AS v", [row[1], row[3]]);
      binary.push([row[0]!, sent[0]!.t, row[2]!, sent[0]!.v]);
    }
    const { rows: oids } = await db.target.query<{ text: number; vector: number }>("SELECT 'text'::regtype::oid::int AS text, 'vector'::regtype::oid::int AS vector");
    const typed: TargetTable = { ...keyed, columns: keyed.columns.map((c) => ({ ...c, typeOid: c.name === "t" ? oids[0]!.text : c.name === "v" ? oids[0]!.vector : undefined })) };
    const upsert = upsertStatement(typed, [0, 1, 2, 3], binary);
    expect(upsert.text).toContain("$2::text[]");
    expect(upsert.text).toContain("$4::vector(3)[]");
    await run(upsert);
    const { rows: landed } = await db.target.query<{ k: string; tt: string | null; jt: string | null; vt: string }>(
      "SELECT id::text AS k, t AS tt, j::text AS jt, v::text AS vt FROM app.keyed WHERE id >= 100 ORDER BY id",
    );
    expect(landed.map((r) => [r.k, r.tt, r.jt, r.vt])).toEqual(await expected(rows));
    // A column of binary values without the target type's OID cannot be sent, nor one mixed with text.
    expect(() => upsertStatement(keyed, [0, 1, 2, 3], binary)).toThrow("binary values for column t without a target type");
    expect(() => upsertStatement(typed, [0, 1, 2, 3], [...binary, rows[0]!])).toThrow("binary values for column t mixed with text");
    await run(deleteStatement(keyed, rows.map((r) => [r[0]!])));
  });

  it("upsert, update and delete with values joined by a separator", async () => {
    const rows = rowsOf(TRICKY);
    const upsert = upsertStatement(keyed, [0, 1, 2, 3], rows);
    expect(upsert.text).toContain("string_to_array(");
    await run(upsert);
    expect(await contents("keyed")).toEqual(await expected(rows));

    // An UPDATE of some columns (the others as if unchanged TOAST), then a delete of half the keys.
    const changed = rows.map((r) => [r[0]!, r[1] === null ? "was null" : `${r[1] as string}!`]);
    const update = updateRowsStatement(keyed, [0, 1], changed)!;
    expect(update.text).toContain("string_to_array(");
    await run(update);
    await run(deleteStatement(keyed, changed.filter((_, i) => i % 2 === 0).map((r) => [r[0]!])));
    const left = rows.filter((_, i) => i % 2 === 1).map((r, i) => [r[0]!, changed[2 * i + 1]![1]!, r[2]!, r[3]!]);
    expect(await contents("keyed")).toEqual(await expected(left));
  });

  it("falls back to text[] when a value holds the separator or the NULL mark, or is a lone empty string", async () => {
    await db.target.query("TRUNCATE app.keyed");
    const cases: Cell[][] = [["a\x1fb", "plain"], ["\x1e", "x"], [""]];
    let from = 100;
    const all: Cell[][] = [];
    for (const texts of cases) {
      const rows = rowsOf(texts, from);
      from += 10;
      const upsert = upsertStatement(keyed, [0, 1, 2, 3], rows);
      expect(upsert.text).not.toContain("string_to_array(");
      await run(upsert);
      all.push(...rows);
    }
    // A lone NULL and a lone non-empty value still travel joined.
    for (const texts of [[null], ["only"]] as Cell[][]) {
      const rows = rowsOf(texts, from);
      from += 10;
      const upsert = upsertStatement(keyed, [0, 1, 2, 3], rows);
      expect(upsert.text).toContain("string_to_array(");
      await run(upsert);
      all.push(...rows);
    }
    expect(await contents("keyed")).toEqual(await expected(all));
  });

  it("inserts keyless rows, duplicates included", async () => {
    const rows = [...rowsOf(TRICKY), ...rowsOf(TRICKY.slice(0, 3))];
    await run(insertRowsStatement(keyless, rows));
    const want = (await expected(rows)).sort((a, b) => Number(a[0]) - Number(b[0]) || String(a[1]).localeCompare(String(b[1])));
    const got = await contents("keyless");
    expect(got).toHaveLength(rows.length);
    expect([...got].sort((a, b) => Number(a[0]) - Number(b[0]) || String(a[1]).localeCompare(String(b[1])))).toEqual(want);
  });
});
