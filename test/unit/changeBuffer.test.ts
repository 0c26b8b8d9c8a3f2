import { describe, expect, it } from "vitest";
import { ChangeBuffer } from "../../src/apply/changeBuffer.js";
import type { Statement } from "../../src/apply/types.js";
import { UNCHANGED } from "../../src/plan/changes.js";
import type { TargetTable } from "../../src/plan/targetTable.js";

const items: TargetTable = {
  id: "app.items",
  schema: "app",
  name: "items",
  columns: [
    { name: "id", type: "bigint" },
    { name: "body", type: "text" },
    { name: "n", type: "integer" },
  ],
  keyIndexes: [0],
};
const other: TargetTable = { ...items, id: "app.other", name: "other" };
const audit: TargetTable = { ...items, id: "app.audit", name: "audit", keyIndexes: [] };

/** A statement's parameters, with each column's joined values (see unnestRows) split back into a list. */
function params(statement: Statement | undefined): unknown[] | undefined {
  if (!statement?.text.includes("string_to_array(")) return statement?.values;
  return statement.values.map((v) => (v as string).split("\x1f").map((cell) => (cell === "\x1e" ? null : cell)));
}

/** A statement reduced to what matters: its kind of SQL and its parameters. */
function shape(statement: Statement): { sql: string; values: unknown[] } {
  const sql = statement.text.split(" ").slice(0, 3).join(" ");
  return { sql, values: params(statement)! };
}

describe("ChangeBuffer", () => {
  it("collapses an insert and its updates into one upsert, filling unchanged columns from the insert", () => {
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "upsert", table: items, values: ["1", "long body", "1"] });
    buffer.add({ kind: "upsert", table: items, values: ["1", UNCHANGED, "2"] });
    buffer.add({ kind: "upsert", table: items, values: ["1", UNCHANGED, "3"] });
    expect(buffer.rows).toBe(1);
    const statements = buffer.drain();
    expect(statements.map(shape)).toEqual([{ sql: 'INSERT INTO "app"."items"', values: [["1"], ["long body"], ["3"]] }]);
    expect(statements[0]?.text).toContain('ON CONFLICT ("id") DO UPDATE SET "body" = EXCLUDED."body", "n" = EXCLUDED."n"');
    expect(buffer.rows).toBe(0);
    expect(buffer.bytes).toBe(0);
    expect(buffer.drain()).toEqual([]);
  });

  it("leaves unchanged TOAST columns out of the statement when the buffer does not know them", () => {
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "upsert", table: items, values: ["1", UNCHANGED, "5"] });
    buffer.add({ kind: "upsert", table: items, values: ["2", "b", "6"] });
    const statements = buffer.drain();
    expect(statements).toHaveLength(2);
    // An UPDATE, not an upsert: a NOT NULL TOASTed column would fail the insert half of ON CONFLICT.
    expect(statements[0]?.text).toBe(`UPDATE "app"."items" AS t SET "n" = u.c1::integer FROM unnest(string_to_array($1::text, E'\\x1f', E'\\x1e'), string_to_array($2::text, E'\\x1f', E'\\x1e')) AS u(c0, c1) WHERE t."id" = u.c0::bigint`);
    expect(statements[0]?.expectRows).toBe(true);
    expect(params(statements[0])).toEqual([["1"], ["5"]]);
    expect(params(statements[1])).toEqual([["2"], ["b"], ["6"]]);
  });

  it("turns an insert followed by a delete into a delete, and a delete followed by an insert into delete + upsert", () => {
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "upsert", table: items, values: ["1", "a", "1"] });
    buffer.add({ kind: "delete", table: items, key: ["1"] });
    buffer.add({ kind: "delete", table: items, key: ["2"] });
    buffer.add({ kind: "upsert", table: items, values: ["2", "new", "9"] });
    expect(buffer.drain().map(shape)).toEqual([
      { sql: 'DELETE FROM "app"."items"', values: [["1", "2"]] },
      { sql: 'INSERT INTO "app"."items"', values: [["2"], ["new"], ["9"]] },
    ]);
  });

  it("resolves a key change with unchanged columns from the buffer, or applies it in order as an UPDATE", () => {
    const known = new ChangeBuffer();
    known.add({ kind: "upsert", table: items, values: ["1", "body", "1"] });
    known.add({ kind: "rekey", table: items, oldKey: ["1"], values: ["7", UNCHANGED, "2"] });
    expect(known.drain().map(shape)).toEqual([
      { sql: 'DELETE FROM "app"."items"', values: [["1"]] },
      { sql: 'INSERT INTO "app"."items"', values: [["7"], ["body"], ["2"]] },
    ]);

    const unknown = new ChangeBuffer();
    unknown.add({ kind: "upsert", table: other, values: ["5", "x", "5"] });
    unknown.add({ kind: "rekey", table: items, oldKey: ["1"], values: ["7", UNCHANGED, "2"] });
    unknown.add({ kind: "upsert", table: items, values: ["7", UNCHANGED, "3"] });
    const statements = unknown.drain();
    expect(statements.map((s) => s.text.split(" SET ")[0]!.split(" (")[0])).toEqual([
      'INSERT INTO "app"."other"',
      'UPDATE "app"."items"',
      'UPDATE "app"."items" AS t',
    ]);
    expect(statements[1]?.text).toBe('UPDATE "app"."items" SET "id" = $1::bigint, "n" = $2::integer WHERE "id" = $3::bigint');
    expect(params(statements[1])).toEqual(["7", "2", "1"]);
  });

  it("drops a table's earlier changes at a TRUNCATE and keeps the order around it", () => {
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "upsert", table: items, values: ["1", "a", "1"] });
    buffer.add({ kind: "upsert", table: other, values: ["1", "a", "1"] });
    buffer.add({ kind: "truncate", tables: [items] });
    buffer.add({ kind: "upsert", table: items, values: ["2", "b", "2"] });
    expect(buffer.drain().map((s) => [s.op, s.table])).toEqual([
      ["insert", "app.other"],
      ["truncate", "app.items"],
      ["insert", "app.items"],
    ]);
  });

  it("keeps keyless changes in order and sends consecutive inserts together", () => {
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "insertRow", table: audit, values: ["1", "a", null] });
    buffer.add({ kind: "insertRow", table: audit, values: ["1", "a", null] });
    buffer.add({ kind: "updateRow", table: audit, old: ["1", "a", null], values: ["1", "b", null] });
    buffer.add({ kind: "deleteRow", table: audit, old: ["1", "a", null] });
    buffer.add({ kind: "insertRow", table: audit, values: ["3", "c", "3"] });
    expect(buffer.rows).toBe(5);
    const statements = buffer.drain();
    expect(statements.map((s) => [s.op, s.rows])).toEqual([
      ["insert", 2],
      ["update", 1],
      ["delete", 1],
      ["insert", 1],
    ]);
    expect(params(statements[0])).toEqual([["1", "1"], ["a", "a"], [null, null]]);
    expect(statements[2]?.text).toContain('t."n"::text IS NOT DISTINCT FROM ($3::integer)::text');
    expect(statements[2]?.text).toContain("LIMIT 1");
  });

  it("names a statement after its text, so each (table, column set) is prepared once", () => {
    const a = new ChangeBuffer();
    a.add({ kind: "upsert", table: items, values: ["1", "a", "1"] });
    const b = new ChangeBuffer();
    b.add({ kind: "upsert", table: items, values: ["2", "b", "2"] });
    b.add({ kind: "upsert", table: items, values: ["3", "c", "3"] });
    const [first] = a.drain();
    const [second] = b.drain();
    expect(first?.name).toMatch(/^pgferry_[0-9a-f]{20}$/);
    expect(second?.name).toBe(first?.name);
    expect(second?.rows).toBe(2);
  });

  it("accounts bytes for what it holds", () => {
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "upsert", table: items, values: ["1", "x".repeat(10_000), "1"] });
    expect(buffer.bytes).toBeGreaterThan(10_000);
    buffer.add({ kind: "delete", table: items, key: ["1"] });
    expect(buffer.bytes).toBeLessThan(1_000);
    expect(buffer.rows).toBe(1);
  });
});

describe("ChangeBuffer with merged sources", () => {
  it("keeps each source's column list apart when several sources feed one target table", () => {
    const fromA: TargetTable = { id: "app.m", schema: "app", name: "m", columns: [{ name: "id", type: "text" }, { name: "x", type: "text" }], keyIndexes: [0] };
    const fromB: TargetTable = { id: "app.m", schema: "app", name: "m", columns: [{ name: "id", type: "text" }, { name: "source", type: "text" }, { name: "y", type: "text" }], keyIndexes: [0] };
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "upsert", table: fromA, values: ["a1", "x1"] });
    buffer.add({ kind: "upsert", table: fromB, values: ["b1", "b", "y1"] });
    const statements = buffer.drain();
    expect(statements.map((s) => s.text.split(" SELECT")[0])).toEqual(['INSERT INTO "app"."m" ("id", "x") OVERRIDING SYSTEM VALUE', 'INSERT INTO "app"."m" ("id", "source", "y") OVERRIDING SYSTEM VALUE']);
    expect(statements.map(params)).toEqual([[["a1"], ["x1"]], [["b1"], ["b"], ["y1"]]]);
  });
});
