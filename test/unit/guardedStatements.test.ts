/**
 * Guarded (conflict-checked) statements as text: the CTEs that judge a batch, their parameter order
 * (the rows, their commit times, the conflict record's values, then the three the applier appends),
 * stable names; and the ChangeBuffer's part: which statements it guards, the commit time an entry
 * keeps when changes collapse, whether an entry inserts its row (an update of a row the target
 * deleted does not bring it back), unrouted changes recorded as conflicts, and update-only targets. Their effect on PostgreSQL is in
 * test/integration/conflicts.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ChangeBuffer } from "../../src/apply/changeBuffer.js";
import {
  guardedDeleteStatement,
  guardedUpdateRowsStatement,
  guardedUpsertStatement,
  unroutedStatement,
  type GuardSettings,
} from "../../src/apply/guardedStatements.js";
import { upsertStatement } from "../../src/apply/statements.js";
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
const pairs: TargetTable = {
  id: "app.pairs",
  schema: "app",
  name: "pairs",
  columns: [
    { name: "a", type: "integer" },
    { name: "v", type: "character varying(5)", castType: "character varying" },
    { name: "b", type: "text" },
  ],
  keyIndexes: [0, 2],
};
const audit: TargetTable = { ...items, id: "app.audit", name: "audit", keyIndexes: [] };
const part: TargetTable = { ...items, id: "app.part", name: "part", updateOnly: true };

const guard: GuardSettings = { direction: "forward", resolution: "last-writer-wins", stateSchema: "pgferry state", pipeline: "main" };
const t1 = new Date("2025-01-01T00:00:01.000Z");
const t2 = new Date("2025-01-01T00:00:02.000Z");
const t3 = new Date("2025-01-01T00:00:03.000Z");

/** A statement's parameters, with each column's joined values (see unnestRows) split back into a list. */
function params(statement: Statement | undefined): unknown[] | undefined {
  if (!statement?.text.includes("string_to_array(")) return statement?.values;
  const columns = (statement.text.match(/string_to_array\(/g) ?? []).length;
  return statement.values.map((v, i) => (i < columns ? (v as string).split("\x1f").map((cell) => (cell === "\x1e" ? null : cell)) : v));
}

/** The highest $n a statement's text refers to. */
function lastPlaceholder(text: string): number {
  return Math.max(...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
}

describe("guarded statements", () => {
  it("upsert: judges the rows in CTEs, records conflicts, then writes only rows that are not lost to the target", () => {
    const statement = guardedUpsertStatement(items, [0, 1, 2], { rows: [["1", "a", "1"], ["2", null, "2"]], at: [t1, undefined], inserted: [true, false] }, guard);
    const { text } = statement;
    expect(text.startsWith("WITH u AS (SELECT c0, c1, c2, date_trunc('milliseconds', c3::timestamptz) AS at, c4::boolean AS inserted FROM unnest(")).toBe(true);
    expect(text).toContain('l AS (SELECT t."id", t.xmin AS pgferry_xmin FROM "app"."items" AS t JOIN u ON t."id" = u.c0::bigint FOR NO KEY UPDATE OF t)');
    expect(text).toContain('FROM u LEFT JOIN l AS t ON t."id" = u.c0::bigint LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(t.pgferry_xmin) AS w ON true)');
    // Update-delete: a row the target does not have, and that the change does not insert, once the opposite pipeline runs.
    const missing = `t."id" IS NULL AND NOT u.inserted AND $11::timestamptz < 'infinity'::timestamptz`;
    expect(text).toContain(`w.timestamp AS local_at, date_trunc('milliseconds', w.timestamp) AS local_ms, ${missing} AS missing, (${missing}) OR (w.roident = 0 AND w.timestamp IS NOT NULL AND date_trunc('milliseconds', w.timestamp) > $11::timestamptz`);
    expect(text).toContain("unnest($12::timestamptz[], $13::timestamptz[]) AS p(ct, applied) WHERE p.ct >= w.timestamp + interval '250 milliseconds') > u.at, true)) AS conflict");
    expect(text).toContain('c AS (INSERT INTO "pgferry state".conflicts (pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time, local_commit_time, resolution, kept)');
    expect(text).toContain("left(encode(sha256(convert_to(concat_ws(', ', (j.c0::bigint)::text), 'UTF8')), 'hex'), 16)");
    // A missing row is never the incoming change's to win: the target keeps it deleted.
    expect(text).toContain("CASE WHEN (NOT j.missing AND coalesce(j.at >= j.local_ms, false)) THEN 'incoming' ELSE 'local' END FROM j WHERE j.conflict)");
    // The write itself is the plain upsert's, over j and restricted to rows not lost to the target.
    expect(text).toContain(
      'INSERT INTO "app"."items" ("id", "body", "n") OVERRIDING SYSTEM VALUE SELECT j.c0::bigint, j.c1::text, j.c2::integer FROM j ' +
        "WHERE NOT j.conflict OR (NOT j.missing AND coalesce(j.at >= j.local_ms, false)) " +
        'ON CONFLICT ("id") DO UPDATE SET "body" = EXCLUDED."body", "n" = EXCLUDED."n"',
    );
    // The rows' columns, their commit times, whether each inserts, the conflict record's values; the applier appends the last three.
    expect(params(statement)).toEqual([["1", "2"], ["a", null], ["1", "2"], ["2025-01-01T00:00:01.000Z", null], ["t", "f"], "main", "forward", "app.items", "id", "last-writer-wins"]);
    expect(lastPlaceholder(text)).toBe(statement.values.length + 3);
    expect(statement).toMatchObject({ guard: true, rows: 2, table: "app.items", op: "insert" });
    expect(statement.expectRows).toBeUndefined();
  });

  it("keeps one text, and so one prepared statement, per table and column set", () => {
    const a = guardedUpsertStatement(items, [0, 1, 2], { rows: [["1", "a", "1"]], at: [t1] }, guard);
    // Whether rows insert is a parameter, not part of the text.
    const b = guardedUpsertStatement(items, [0, 1, 2], { rows: [["2", "b", "2"], ["3", "c", "3"]], at: [undefined, t2], inserted: [true, false] }, guard);
    expect(b.text).toBe(a.text);
    expect(b.name).toBe(a.name);
    expect(a.name).toMatch(/^pgferry_[0-9a-f]{20}$/);
    // Not the plain upsert's, and not the other direction's (which breaks a tie the other way).
    expect(upsertStatement(items, [0, 1, 2], [["1", "a", "1"]]).name).not.toBe(a.name);
    const reverse = guardedUpsertStatement(items, [0, 1, 2], { rows: [["1", "a", "1"]], at: [t1] }, { ...guard, direction: "reverse" });
    expect(reverse.name).not.toBe(a.name);
    // A value holding the separator sends text[] arrays: another text, with the same parameter order.
    const arrays = guardedUpsertStatement(items, [0, 1, 2], { rows: [["1", "a\x1fb", "1"]], at: [t1] }, guard);
    expect(arrays.text).not.toContain("string_to_array(");
    expect(arrays.values).toEqual([["1"], ["a\x1fb"], ["1"], ["2025-01-01T00:00:01.000Z"], ["f"], "main", "forward", "app.items", "id", "last-writer-wins"]);
    expect(lastPlaceholder(arrays.text)).toBe(arrays.values.length + 3);
  });

  it("says when the incoming row wins, per resolution and direction (a last-writer tie goes to the old project)", () => {
    const winsIn = (resolution: GuardSettings["resolution"], direction: GuardSettings["direction"]) => {
      const { text } = guardedUpdateRowsStatement(pairs, [0, 2, 1], { rows: [["1", "b", "x"]], at: [t1] }, { ...guard, resolution, direction })!;
      return /AND \(NOT j\.conflict OR (.+?)\) RETURNING 1\)/.exec(text)?.[1];
    };
    expect(winsIn("last-writer-wins", "forward")).toBe("coalesce(j.at >= j.local_ms, false)");
    expect(winsIn("last-writer-wins", "reverse")).toBe("coalesce(j.at > j.local_ms, false)");
    expect(winsIn("prefer-old", "forward")).toBe("true");
    expect(winsIn("prefer-old", "reverse")).toBe("false");
    expect(winsIn("prefer-new", "forward")).toBe("false");
    expect(winsIn("prefer-new", "reverse")).toBe("true");
    expect(winsIn("stop", "forward")).toBe("false");
    const stop = guardedDeleteStatement(items, { rows: [["1"]], at: [t1] }, { ...guard, resolution: "stop" });
    expect(stop.text).toContain("j.at, j.local_at, $7::text, 'stopped' FROM j WHERE j.conflict)");
  });

  it("update: reports the rows it found, written or kept as the target's, so a lost conflict is not a missing row", () => {
    const statement = guardedUpdateRowsStatement(pairs, [0, 2, 1], { rows: [["1", "b", "x"]], at: [t1] }, guard)!;
    expect(statement.text).toContain('FROM u LEFT JOIN l AS t ON t."a" = u.c0::integer AND t."b" = u.c1::text');
    expect(statement.text).toContain("concat_ws(', ', (j.c0::integer)::text, (j.c1::text)::text)");
    expect(statement.text).toContain(
      'written AS (UPDATE "app"."pairs" AS t SET "v" = j.c2::character varying FROM j WHERE t."a" = j.c0::integer AND t."b" = j.c1::text ' +
        "AND (NOT j.conflict OR coalesce(j.at >= j.local_ms, false)) RETURNING 1) " +
        "SELECT ((SELECT count(*) FROM written) + (SELECT count(*) FROM j WHERE j.conflict AND NOT coalesce(j.at >= j.local_ms, false)))::int AS matched",
    );
    expect(params(statement)).toEqual([["1"], ["b"], ["x"], ["2025-01-01T00:00:01.000Z"], "main", "forward", "app.pairs", "a, b", "last-writer-wins"]);
    expect(statement).toMatchObject({ guard: true, expectRows: true, op: "update" });
    // Nothing but the key: nothing to update, as for the plain statement.
    expect(guardedUpdateRowsStatement(pairs, [0, 2], { rows: [["1", "b"]], at: [t1] }, guard)).toBeNull();
  });

  it("delete: wins over a local update it did not see (recorded), except under stop", () => {
    const statement = guardedDeleteStatement(items, { rows: [["1"], ["2"]], at: [t1, t2] }, guard);
    expect(statement.text).toContain('DELETE FROM "app"."items" AS t USING j WHERE t."id" = j.c0::bigint AND (NOT j.conflict OR true)');
    expect(statement.text).toContain("CASE WHEN true THEN 'incoming' ELSE 'local' END FROM j WHERE j.conflict)");
    // The rows it may delete are locked for it (a key-changing lock), and judged as they are then.
    expect(statement.text).toContain('JOIN u ON t."id" = u.c0::bigint FOR UPDATE OF t)');
    const stop = guardedDeleteStatement(items, { rows: [["1"]], at: [t1] }, { ...guard, resolution: "stop" });
    expect(stop.text).toContain("AND (NOT j.conflict OR false)");
    expect(params(statement)).toEqual([["1", "2"], ["2025-01-01T00:00:01.000Z", "2025-01-01T00:00:02.000Z"], "main", "forward", "app.items", "id", "last-writer-wins"]);
    expect(statement).toMatchObject({ guard: true, rows: 2, op: "delete" });
  });
});

describe("ChangeBuffer with a guard", () => {
  it("guards keyed upserts, updates and deletes; barriers and keyless tables stay unguarded", () => {
    const buffer = new ChangeBuffer({ guard });
    buffer.add({ kind: "upsert", table: items, values: ["1", "a", "1"], at: t1 });
    buffer.add({ kind: "upsert", table: items, values: ["2", UNCHANGED, "2"], at: t1 });
    buffer.add({ kind: "delete", table: items, key: ["3"], at: t1 });
    buffer.add({ kind: "insertRow", table: audit, values: ["1", "a", "1"] });
    buffer.add({ kind: "rekey", table: items, oldKey: ["4"], values: ["5", UNCHANGED, "5"], at: t2 });
    buffer.add({ kind: "deleteOwned", table: items, match: [{ column: "n", type: "integer", value: "7" }] });
    buffer.add({ kind: "truncate", tables: [audit] });
    const statements = buffer.drain();
    expect(statements.map((s) => [s.op, s.table, s.guard === true])).toEqual([
      ["delete", "app.items", true],
      ["insert", "app.items", true],
      ["update", "app.items", true],
      ["insert", "app.audit", false],
      ["update", "app.items", false],
      ["truncate", "app.items", false],
      ["truncate", "app.audit", false],
    ]);
    expect(statements[2]?.expectRows).toBe(true);
  });

  it("judges a row deleted and inserted again in the batch (replaced) by time, apart from plain deletes", () => {
    const buffer = new ChangeBuffer({ guard });
    buffer.add({ kind: "delete", table: items, key: ["1"], at: t1 });
    buffer.add({ kind: "delete", table: items, key: ["2"], at: t1 });
    buffer.add({ kind: "upsert", table: items, values: ["2", "b", "1"], at: t2, inserted: true });
    const [plain, replaced, insert] = buffer.drain();
    expect(params(plain)?.slice(0, 2)).toEqual([["1"], ["2025-01-01T00:00:01.000Z"]]);
    expect(plain?.text).toContain("AND (NOT j.conflict OR true)");
    expect(params(replaced)?.slice(0, 2)).toEqual([["2"], ["2025-01-01T00:00:02.000Z"]]);
    // Deleted only when the incoming change is the later one, and recorded only then (the upsert records the other outcome).
    expect(replaced?.text).toContain("AND (NOT j.conflict OR coalesce(j.at >= j.local_ms, false))");
    expect(replaced?.text).toContain("FROM j WHERE j.conflict AND coalesce(j.at >= j.local_ms, false))");
    expect(insert).toMatchObject({ op: "insert", guard: true });
    // Without a guard, one delete statement clears both keys.
    const plainBuffer = new ChangeBuffer();
    plainBuffer.add({ kind: "delete", table: items, key: ["1"], at: t1 });
    plainBuffer.add({ kind: "delete", table: items, key: ["2"], at: t1 });
    plainBuffer.add({ kind: "upsert", table: items, values: ["2", "b", "1"], at: t2, inserted: true });
    expect(plainBuffer.drain().map((s) => [s.op, s.rows])).toEqual([["delete", 2], ["insert", 1]]);
  });

  it("keeps the latest commit time of the changes collapsed into an entry", () => {
    const buffer = new ChangeBuffer({ guard });
    // Out of order on purpose: the latest wins, not the last added.
    buffer.add({ kind: "upsert", table: items, values: ["1", "a", "1"], at: t1 });
    buffer.add({ kind: "upsert", table: items, values: ["1", UNCHANGED, "2"], at: t3 });
    buffer.add({ kind: "upsert", table: items, values: ["1", UNCHANGED, "3"], at: t2 });
    // A change without a time keeps the entry's.
    buffer.add({ kind: "upsert", table: items, values: ["2", "b", "1"], at: t2 });
    buffer.add({ kind: "upsert", table: items, values: ["2", "b", "2"] });
    // Deleted after an upsert: the delete carries both changes' latest time.
    buffer.add({ kind: "upsert", table: items, values: ["3", "c", "1"], at: t3 });
    buffer.add({ kind: "delete", table: items, key: ["3"], at: t1 });
    // Nothing carried a time: none.
    buffer.add({ kind: "upsert", table: items, values: ["4", "d", "1"] });
    const [remove, upsert] = buffer.drain();
    expect(params(remove)?.slice(0, 2)).toEqual([["3"], ["2025-01-01T00:00:03.000Z"]]);
    expect(params(upsert)?.slice(0, 4)).toEqual([
      ["1", "2", "4"],
      ["a", "b", "d"],
      ["3", "2", "1"],
      ["2025-01-01T00:00:03.000Z", "2025-01-01T00:00:02.000Z", null],
    ]);
  });

  it("resolves a key change from the buffer into a guarded delete and upsert, with the change's time", () => {
    const buffer = new ChangeBuffer({ guard });
    buffer.add({ kind: "upsert", table: items, values: ["1", "body", "1"], at: t1 });
    buffer.add({ kind: "rekey", table: items, oldKey: ["1"], values: ["7", UNCHANGED, "2"], at: t2 });
    const [remove, upsert] = buffer.drain();
    expect(params(remove)?.slice(0, 2)).toEqual([["1"], ["2025-01-01T00:00:02.000Z"]]);
    expect(params(upsert)?.slice(0, 4)).toEqual([["7"], ["body"], ["2"], ["2025-01-01T00:00:02.000Z"]]);
    expect([remove?.guard, upsert?.guard]).toEqual([true, true]);
  });
});

describe("rows an upsert inserts (update-delete conflicts)", () => {
  /** Each upsert row's key and whether it inserts, from a drained buffer's guarded upsert. */
  const inserts = (statements: Statement[]) => {
    const upsert = statements.find((s) => s.op === "insert")!;
    const p = params(upsert)!;
    return Object.fromEntries((p[0] as string[]).map((key, i) => [key, (p[4] as string[])[i]]));
  };

  it("follows the first change collapsed into an entry, or a delete of the key before it", () => {
    const buffer = new ChangeBuffer({ guard });
    // Inserted, then updated: the row is still the batch's to insert.
    buffer.add({ kind: "upsert", table: items, values: ["1", "a", "1"], at: t1, inserted: true });
    buffer.add({ kind: "upsert", table: items, values: ["1", "b", "2"], at: t2 });
    // Updated, then "inserted" by a later change: the first said the row should already be there.
    buffer.add({ kind: "upsert", table: items, values: ["2", "a", "1"], at: t1 });
    buffer.add({ kind: "upsert", table: items, values: ["2", "b", "2"], at: t2, inserted: true });
    // Deleted, then written anew: the delete runs first, so the write inserts.
    buffer.add({ kind: "delete", table: items, key: ["3"], at: t1 });
    buffer.add({ kind: "upsert", table: items, values: ["3", "c", "3"], at: t2 });
    // A key change resolved in the buffer: the row under its new key is inserted.
    buffer.add({ kind: "upsert", table: items, values: ["4", "d", "4"], at: t1 });
    buffer.add({ kind: "rekey", table: items, oldKey: ["4"], values: ["5", UNCHANGED, "5"], at: t2 });
    buffer.add({ kind: "upsert", table: items, values: ["6", "e", "6"], at: t1 });
    expect(inserts(buffer.drain())).toEqual({ "1": "t", "2": "f", "3": "t", "5": "t", "6": "f" });
  });

  it("changes nothing without a guard: the plain upsert inserts whatever is missing", () => {
    const buffer = new ChangeBuffer();
    buffer.add({ kind: "upsert", table: items, values: ["1", "a", "1"], at: t1 });
    const [statement] = buffer.drain();
    expect(statement?.text).not.toContain("inserted");
    expect(statement?.values).toHaveLength(3);
  });
});

describe("unrouted changes", () => {
  it("are recorded in the conflict log as kept local, with the guarded statements' key fingerprint", () => {
    const statement = unroutedStatement(
      [
        { table: "sec.api_keys", keyColumns: ["id"], key: ["8f14e45f-ceea-467f-a0e6-6a4f0e3d0b5c"], at: t1 },
        { table: "sec.pairs", keyColumns: ["a", "b"], key: ["1", null], at: undefined },
      ],
      guard,
    );
    expect(statement.text).toBe(
      'INSERT INTO "pgferry state".conflicts (pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time, local_commit_time, resolution, kept) ' +
        "SELECT $1::text, $2::text, r.table_name, r.key_columns, left(encode(sha256(convert_to(r.key, 'UTF8')), 'hex'), 16), r.at, NULL, $3::text, 'local' " +
        "FROM unnest($4::text[], $5::text[], $6::text[], $7::timestamptz[]) AS r(table_name, key_columns, key, at)",
    );
    // A NULL key value is left out of the fingerprinted text, as concat_ws leaves it out.
    expect(statement.values).toEqual([
      "main", "forward", "last-writer-wins",
      ["sec.api_keys", "sec.pairs"], ["id", "a, b"], ["8f14e45f-ceea-467f-a0e6-6a4f0e3d0b5c", "1"], ["2025-01-01T00:00:01.000Z", null],
    ]);
    // Not guarded (it needs no progress), but its conflicts are counted with the transaction's.
    expect(statement).toMatchObject({ recordsConflicts: true, rows: 2, op: "insert", table: "pgferry state.conflicts" });
    expect(statement.guard).toBeUndefined();
    expect(unroutedStatement([{ table: "x", keyColumns: ["id"], key: ["1"], at: t2 }], guard).name).toBe(statement.name);
  });

  it("go into one record statement per flush, without breaking the batch's collapse; without a guard they are dropped", () => {
    const unrouted = (id: string) => ({ kind: "unrouted" as const, table: "sec.api_keys", keyColumns: ["id"], key: [id], at: t1 });
    const buffer = new ChangeBuffer({ guard });
    buffer.add({ kind: "upsert", table: items, values: ["1", "a", "1"], at: t1, inserted: true });
    buffer.add(unrouted("u1"));
    buffer.add({ kind: "upsert", table: items, values: ["1", "b", "2"], at: t2 });
    buffer.add(unrouted("u2"));
    expect(buffer.rows).toBe(3);
    const statements = buffer.drain();
    expect(statements.map((s) => [s.op, s.table, s.rows])).toEqual([
      ["insert", "app.items", 1],
      ["insert", "pgferry state.conflicts", 2],
    ]);
    expect(statements[1]?.values[5]).toEqual(["u1", "u2"]);
    expect(buffer.drain()).toEqual([]);

    const unguarded = new ChangeBuffer();
    unguarded.add(unrouted("u1"));
    expect(unguarded.rows).toBe(0);
    expect(unguarded.drain()).toEqual([]);
  });
});

describe("update-only targets", () => {
  it("applies upserts as updates of existing rows and drops deletes, guarded or not", () => {
    for (const buffer of [new ChangeBuffer(), new ChangeBuffer({ guard })]) {
      buffer.add({ kind: "upsert", table: part, values: ["1", "a", "1"], at: t1 });
      buffer.add({ kind: "upsert", table: part, values: ["2", UNCHANGED, "2"], at: t1 });
      buffer.add({ kind: "delete", table: part, key: ["3"], at: t1 });
      // Deleted and written anew in the batch: only the update remains.
      buffer.add({ kind: "delete", table: part, key: ["4"], at: t1 });
      buffer.add({ kind: "upsert", table: part, values: ["4", "d", "4"], at: t1 });
      const statements = buffer.drain();
      expect(statements.map((s) => [s.op, s.rows, s.expectRows])).toEqual([
        ["update", 2, true],
        ["update", 1, true],
      ]);
      const [all, some] = statements;
      expect(all?.text).toContain('"body" = ');
      expect(all?.text).toContain('"n" = ');
      expect(some?.text).not.toContain('"body" = ');
      expect(params(all)?.slice(0, 3)).toEqual([["1", "4"], ["a", "d"], ["1", "4"]]);
    }
  });
});
