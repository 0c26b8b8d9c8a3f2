/**
 * Conflict detection on real PostgreSQL (one database, track_commit_timestamp on): a table whose rows
 * were last written by a replication-origin session (pgferry's other pipeline: not local), by a plain
 * session before the floor (history: not local) and after it (local), some of those already carried
 * to the other side. Guarded batches go through the ChangeBuffer and the real Applier with a stub
 * ConflictGuard whose progress the test sets; each resolution is checked row by row, with the
 * conflicts it records and the counts `commit` returns. Also update-delete conflicts (an update of a
 * row the target deleted is not applied) and unrouted changes (recorded, nothing written).
 */
import { COMMIT_ORDER_MARGIN_MS } from "../../src/apply/conflictGuard.js";
import { createHash } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Applier } from "../../src/apply/applier.js";
import { ChangeBuffer } from "../../src/apply/changeBuffer.js";
import type { ConflictGuard, OppositeProgress } from "../../src/apply/conflictGuard.js";
import type { ApplyChange, Statement } from "../../src/apply/types.js";
import { PgferryError } from "../../src/errors.js";
import { classify } from "../../src/pipeline/errorPolicy.js";
import { UNCHANGED, type TargetChange } from "../../src/plan/changes.js";
import type { TargetTable } from "../../src/plan/targetTable.js";
import { endpoint } from "../../src/sql/endpoint.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { waitFor } from "../harness/waitFor.js";

const items: TargetTable = {
  id: "app.items",
  schema: "app",
  name: "items",
  columns: [
    { name: "id", type: "integer" },
    { name: "v", type: "text" },
    { name: "n", type: "integer" },
  ],
  keyIndexes: [0],
};
const part: TargetTable = { ...items, id: "app.part", name: "part", updateOnly: true };

let db: TestDatabases;
let applier: Applier;
/** A session tagged with a replication origin: its writes are another pipeline's, never local. */
let other: pg.Client;
let origins: string[] = [];
const missing: [string, number][] = [];

/** The guard the buffer and the applier share; each test sets what it needs. */
const guard: ConflictGuard & { progressCalls: number; next: OppositeProgress } = {
  direction: "forward",
  resolution: "last-writer-wins",
  stateSchema: "st",
  pipeline: "main",
  progressCalls: 0,
  next: { floor: null, commitTimes: [], appliedAt: [] },
  progress() {
    this.progressCalls += 1;
    return Promise.resolve(this.next);
  },
};

/** What the seeded rows' last writes were, for building batches and checking the record. */
interface Seeded {
  floor: Date;
  /** Each local row's commit time: as a Date (milliseconds) and as PostgreSQL's text (microseconds). */
  local: Record<3 | 5 | 6, { at: Date; text: string }>;
  /** Later than every write; earlier than the local ones (the floor). */
  late: Date;
  early: Date;
  progress: OppositeProgress;
}
let seeded: Seeded;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A point in time after everything committed so far, exact to the millisecond (as a Date holds it). */
async function after(): Promise<Date> {
  const { rows } = await db.target.query<{ t: Date }>("SELECT date_trunc('milliseconds', clock_timestamp()) + interval '1 millisecond' AS t");
  await sleep(15);
  return rows[0]!.t;
}

async function write(client: pg.ClientBase | pg.Pool, id: number, v: string): Promise<void> {
  await client.query("INSERT INTO app.items (id, v, n) VALUES ($1, $2, 0)", [id, v]);
  await sleep(15);
}

/**
 * The rows every test starts from:
 * 1 written by the other pipeline (origin session); 2 written locally before the floor;
 * 5 written locally, then carried (the other pipeline had applied it at `c5`, before any incoming
 * change); 6 written locally and carried only after the incoming changes (far in the future);
 * 3 written locally last, not carried at all (no progress entry reaches it); 4 absent.
 */
async function seed(): Promise<Seeded> {
  await db.target.query("TRUNCATE app.items, app.part, st.conflicts");
  await write(other, 1, "other pipeline");
  await write(db.target, 2, "history");
  const floor = await after();
  await write(db.target, 5, "carried");
  const c5 = await after();
  await write(db.target, 6, "not yet carried");
  const c6 = await after();
  await write(db.target, 3, "local");
  const { rows } = await db.target.query<{ id: number; at: Date; text: string }>(
    "SELECT id, pg_xact_commit_timestamp(xmin) AS at, pg_xact_commit_timestamp(xmin)::text AS text FROM app.items WHERE id IN (3, 5, 6)",
  );
  const local = Object.fromEntries(rows.map((r) => [r.id, { at: r.at, text: r.text }])) as Seeded["local"];
  const late = new Date(local[3].at.getTime() + 1000);
  const far = new Date(c6.getTime() + 3_600_000);
  return { floor, local, late, early: floor, progress: { floor, commitTimes: [c5, c6].map((c) => new Date(c.getTime() + COMMIT_ORDER_MARGIN_MS).toISOString()), appliedAt: [c5, far] } };
}

async function contents(table = "app.items"): Promise<Record<number, string>> {
  const { rows } = await db.target.query<{ id: number; v: string }>(`SELECT id, v FROM ${table} ORDER BY id`);
  return Object.fromEntries(rows.map((r) => [r.id, r.v]));
}

interface ConflictRow {
  pipeline: string;
  direction: string;
  table_name: string;
  key_columns: string;
  key_fingerprint: string;
  incoming: string | null;
  local: string | null;
  resolution: string;
  kept: string;
}
async function conflicts(): Promise<ConflictRow[]> {
  const { rows } = await db.target.query<ConflictRow>(
    "SELECT pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time::text AS incoming, local_commit_time::text AS local, resolution, kept FROM st.conflicts ORDER BY key_fingerprint, id",
  );
  return rows;
}

const fingerprint = (key: string) => createHash("sha256").update(key).digest("hex").slice(0, 16);
/** A Date as PostgreSQL prints a timestamptz in UTC (`2025-01-01 00:00:01.12+00`: no trailing zeros). */
const pgText = (at: Date) => `${at.toISOString().replace("T", " ").replace("Z", "").replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "")}+00`;

/** The guarded statements a buffer makes of `changes` (with the test's guard). */
function batch(changes: ApplyChange[]): Statement[] {
  const buffer = new ChangeBuffer({ guard });
  for (const change of changes) buffer.add(change);
  return buffer.drain();
}

async function apply(statements: Statement[]) {
  await applier.execute(statements);
  return (await applier.commit({ commitLsn: 0n, endLsn: 0n, commitTime: null })).conflicts;
}

/** An upsert of row `id`; `inserted`: the change inserts it (a source insert), otherwise it updates a row that should be there. */
const upsert = (id: number, v: string, at: Date | undefined, inserted = false): TargetChange => ({ kind: "upsert", table: items, values: [String(id), v, "1"], at, inserted });

/** Every seeded row upserted (row 4, absent, inserted): the local ones 3 late, 6 early (so last-writer-wins splits them). */
function everyRow(): TargetChange[] {
  const { late, early } = seeded;
  return [upsert(1, "in", late), upsert(2, "in", late), upsert(3, "in", late), upsert(4, "in", late, true), upsert(5, "in", late), upsert(6, "in", early)];
}

beforeAll(async () => {
  db = await createTestDatabases("conflicts");
  await db.target.query(`CREATE SCHEMA st; CREATE SCHEMA app;
    CREATE TABLE st.conflicts (id bigserial, pipeline text, direction text, table_name text, key_columns text, key_fingerprint text, incoming_commit_time timestamptz, local_commit_time timestamptz, resolution text, kept text, xid xid8 DEFAULT pg_current_xact_id(), detected_at timestamptz DEFAULT now());
    CREATE TABLE app.items (id integer PRIMARY KEY, v text, n integer NOT NULL);
    CREATE TABLE app.part (id integer PRIMARY KEY, v text, n integer NOT NULL);`);
  // Origins are cluster-wide: named after this file's database.
  origins = [`${db.name}_other`, `${db.name}_apply`];
  other = new pg.Client({ connectionString: db.targetUrl });
  await other.connect();
  await other.query("SELECT pg_replication_origin_create($1)", [origins[0]]);
  await other.query("SELECT pg_replication_origin_session_setup($1)", [origins[0]]);
  applier = await Applier.connect({
    target: endpoint("target", db.targetUrl),
    applicationName: "pgferry-test",
    origin: origins[1],
    guard,
    onMissingRows: (table, count) => missing.push([table, count]),
    writeCheckpoint: () => Promise.resolve(),
  });
});
afterAll(async () => {
  await applier?.close();
  await other?.end();
  if (db) {
    for (const name of origins) await db.target.query("SELECT pg_replication_origin_drop($1)", [name]).catch(() => undefined);
    await db.drop();
  }
});
beforeEach(async () => {
  seeded = await seed();
  Object.assign(guard, { direction: "forward", resolution: "last-writer-wins", next: seeded.progress, progressCalls: 0 });
  missing.length = 0;
});

describe("conflict detection", () => {
  it("last-writer-wins forward: only unseen local writes conflict; the later write wins", async () => {
    const counts = await apply(batch(everyRow()));
    expect(await contents()).toEqual({
      1: "in", // the other pipeline's write: not local
      2: "in", // local, but before the floor
      3: "in", // local, unseen, older than the incoming change: the incoming wins
      4: "in", // absent: inserted
      5: "in", // local, but carried before the incoming change committed
      6: "not yet carried", // local, carried only after the incoming change: newer, kept
    });
    const { late, early, local } = seeded;
    expect(await conflicts()).toEqual(
      [
        { pipeline: "main", direction: "forward", table_name: "app.items", key_columns: "id", key_fingerprint: fingerprint("3"), incoming: pgText(late), local: local[3].text, resolution: "last-writer-wins", kept: "incoming" },
        { pipeline: "main", direction: "forward", table_name: "app.items", key_columns: "id", key_fingerprint: fingerprint("6"), incoming: pgText(early), local: local[6].text, resolution: "last-writer-wins", kept: "local" },
      ].sort((a, b) => a.key_fingerprint.localeCompare(b.key_fingerprint)),
    );
    expect(counts).toEqual([
      { table: "app.items", resolution: "last-writer-wins", kept: "incoming", count: 1 },
      { table: "app.items", resolution: "last-writer-wins", kept: "local", count: 1 },
    ]);
    // Read once for the transaction, however many guarded statements ran.
    expect(guard.progressCalls).toBe(1);
    // What pgferry wrote carries its origin: the next change to row 3 meets no local write.
    const { rows } = await db.target.query<{ roident: number }>("SELECT w.roident FROM app.items t, pg_xact_commit_timestamp_origin(t.xmin) w WHERE t.id = 3");
    expect(rows[0]!.roident).not.toBe(0);
    expect(await apply(batch([upsert(3, "again", seeded.early)]))).toEqual([]);
    expect((await contents())[3]).toBe("again");
  });

  it.each([
    ["last-writer-wins", "reverse", { 3: "in", 6: "not yet carried" }, ["incoming", "local"]],
    ["prefer-old", "forward", { 3: "in", 6: "in" }, ["incoming", "incoming"]],
    ["prefer-old", "reverse", { 3: "local", 6: "not yet carried" }, ["local", "local"]],
    ["prefer-new", "forward", { 3: "local", 6: "not yet carried" }, ["local", "local"]],
    ["prefer-new", "reverse", { 3: "in", 6: "in" }, ["incoming", "incoming"]],
  ] as const)("%s %s: keeps what the resolution prefers, and only for conflicts", async (resolution, direction, kept, outcome) => {
    Object.assign(guard, { resolution, direction });
    const counts = await apply(batch(everyRow()));
    expect(await contents()).toEqual({ 1: "in", 2: "in", 3: kept[3], 4: "in", 5: "in", 6: kept[6] });
    const recorded = await conflicts();
    const byKey = Object.fromEntries(recorded.map((r) => [r.key_fingerprint, r]));
    expect([byKey[fingerprint("3")]?.kept, byKey[fingerprint("6")]?.kept]).toEqual(outcome);
    expect(recorded).toHaveLength(2);
    expect(recorded.every((r) => r.direction === direction && r.resolution === resolution)).toBe(true);
    expect(counts.reduce((n, c) => n + c.count, 0)).toBe(2);
    expect(counts.every((c) => c.resolution === resolution && c.table === "app.items")).toBe(true);
  });

  it("last-writer-wins breaks a tie of commit times for the old project", async () => {
    // Commit times are compared to the millisecond (a Date's precision): the local commit time's own
    // text (microseconds) ties with it, and is recorded as compared.
    const tied = (direction: "forward" | "reverse") => {
      guard.direction = direction;
      const [statement] = batch([upsert(3, direction, seeded.local[3].at)]);
      const values = [...statement!.values];
      values[3] = seeded.local[3].text; // the `at` column of one row (after id, v, n)
      return [{ ...statement!, values }];
    };
    expect(await apply(tied("reverse"))).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "local", count: 1 }]);
    expect((await contents())[3]).toBe("local");
    expect(await apply(tied("forward"))).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "incoming", count: 1 }]);
    expect((await contents())[3]).toBe("forward");
    const recorded = await conflicts();
    expect(recorded.map((r) => [r.direction, r.incoming, r.local, r.kept])).toEqual([
      ["reverse", toMillisecond(seeded.local[3].text), seeded.local[3].text, "local"],
      ["forward", toMillisecond(seeded.local[3].text), seeded.local[3].text, "incoming"],
    ]);
  });

  it("does not take a progress entry less than the commit-order margin after the local write as the write applied", async () => {
    // A commit 100 ms after row 3's local write may have reached the WAL before it (its timestamp was
    // taken later, its commit record written first): applied long before the incoming change, it vouches for nothing.
    const { rows } = await db.target.query<{ ct: string }>(
      `SELECT to_char((pg_xact_commit_timestamp(xmin) + interval '100 milliseconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ct FROM app.items WHERE id = 3`,
    );
    guard.next = { floor: seeded.floor, commitTimes: [rows[0]!.ct], appliedAt: [seeded.floor] };
    expect(await apply(batch([upsert(3, "in", seeded.late)]))).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "incoming", count: 1 }]);
    // One past the margin does.
    await db.target.query("UPDATE app.items SET v = 'local again' WHERE id = 3");
    const again = await db.target.query<{ ct: string }>(
      `SELECT to_char((pg_xact_commit_timestamp(xmin) + interval '${COMMIT_ORDER_MARGIN_MS} milliseconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ct FROM app.items WHERE id = 3`,
    );
    guard.next = { floor: seeded.floor, commitTimes: [again.rows[0]!.ct], appliedAt: [seeded.floor] };
    expect(await apply(batch([upsert(3, "seen", seeded.late)]))).toEqual([]);
    expect((await contents())[3]).toBe("seen");
  });

  it("does not take a progress entry of the same millisecond, made before the local write, as the write applied", async () => {
    // The opposite pipeline applied everything up to 1 µs before row 3's local write, long before the
    // incoming change: the write itself was not applied, so the change did not see it.
    const { rows } = await db.target.query<{ ct: string }>(
      `SELECT to_char((pg_xact_commit_timestamp(xmin) - interval '1 microsecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ct FROM app.items WHERE id = 3`,
    );
    guard.next = { floor: seeded.floor, commitTimes: [rows[0]!.ct], appliedAt: [seeded.floor] };
    const counts = await apply(batch([upsert(3, "in", seeded.late)]));
    expect(counts).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "incoming", count: 1 }]);
    expect((await conflicts()).map((r) => [r.key_fingerprint, r.local])).toEqual([[fingerprint("3"), seeded.local[3].text]]);
  });

  it("judges a change without a commit time as not having seen the local write", async () => {
    const counts = await apply(batch([upsert(3, "in", undefined), upsert(4, "in", undefined, true)]));
    expect(await contents()).toMatchObject({ 3: "local", 4: "in" });
    expect(counts).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "local", count: 1 }]);
    expect((await conflicts())[0]?.incoming).toBeNull();
  });

  it("guards deletes: a delete wins over a local update it did not see, and is recorded", async () => {
    const { late, early } = seeded;
    const statements = batch([
      { kind: "delete", table: items, key: ["1"], at: late },
      { kind: "delete", table: items, key: ["3"], at: early },
      { kind: "delete", table: items, key: ["4"], at: late },
      { kind: "delete", table: items, key: ["6"], at: late },
      upsert(8, "in", late, true),
    ]);
    expect(statements.map((s) => s.op)).toEqual(["delete", "insert"]);
    // Applied progressively (two executes) in one transaction: the progress is still read once.
    await applier.execute(statements.slice(0, 1));
    const counts = await apply(statements.slice(1));
    expect(guard.progressCalls).toBe(1);
    // Row 3's local write is later than its delete, yet the delete wins (the deleting side could not keep the update).
    expect(await contents()).toEqual({ 2: "history", 5: "carried", 8: "in" });
    expect(counts).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "incoming", count: 2 }]);
  });

  it("guards updates of rows with unchanged columns, and counts a row kept as the target's as found", async () => {
    const { late, early } = seeded;
    const counts = await apply(
      batch([
        { kind: "upsert", table: items, values: ["1", UNCHANGED, "7"], at: late },
        { kind: "upsert", table: items, values: ["3", UNCHANGED, "7"], at: early },
        { kind: "upsert", table: items, values: ["4", UNCHANGED, "7"], at: late },
      ]),
    );
    const { rows } = await db.target.query<{ id: number; v: string; n: number }>("SELECT id, v, n FROM app.items WHERE id IN (1, 3, 4) ORDER BY id");
    expect(rows).toEqual([
      { id: 1, v: "other pipeline", n: 7 },
      { id: 3, v: "local", n: 0 },
    ]);
    // Row 4 is not there (drift, as for the plain statement); row 3 was, and stays the target's.
    expect(missing).toEqual([["app.items", 1]]);
    expect(counts).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "local", count: 1 }]);
  });

  it("judges a row the batch deletes and inserts again (replaced) by time, as an update, recording the conflict once", async () => {
    const { late, early } = seeded;
    // Row 3: local, unseen, later than the replacement (it stays); row 6: local, unseen, earlier (replaced).
    const replace = (id: number, at: Date): ApplyChange[] => [
      { kind: "delete", table: items, key: [String(id)], at },
      upsert(id, "replaced", at, true),
    ];
    const counts = await apply(batch([...replace(3, early), ...replace(6, late)]));
    expect(await contents()).toMatchObject({ 3: "local", 6: "replaced" });
    expect(counts).toEqual([
      { table: "app.items", resolution: "last-writer-wins", kept: "incoming", count: 1 },
      { table: "app.items", resolution: "last-writer-wins", kept: "local", count: 1 },
    ]);
    expect((await conflicts()).map((c) => [c.key_fingerprint, c.kept])).toEqual(
      [[fingerprint("3"), "local"], [fingerprint("6"), "incoming"]].sort((a, b) => a[0]!.localeCompare(b[0]!)),
    );
  });

  /**
   * A local write that commits while a guarded statement is already running: the application's
   * transaction holds the row when the batch starts and commits once the batch waits for it. The
   * batch must judge the row as that write left it, not as its snapshot had it.
   */
  async function racing(localWrite: string, changes: ApplyChange[]): Promise<Awaited<ReturnType<typeof apply>>> {
    const local = new pg.Client({ connectionString: db.targetUrl });
    await local.connect();
    try {
      await local.query("BEGIN");
      await local.query(localWrite);
      const pending = apply(batch(changes));
      pending.catch(() => undefined);
      await waitFor(
        async () => (await db.target.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgferry-test' AND wait_event_type = 'Lock'")).rows[0]!.n,
        { description: "the batch waiting for the local transaction's row lock", until: (n) => n === 1 },
      );
      await local.query("COMMIT");
      return await pending;
    } finally {
      await local.end();
    }
  }

  it("judges a row by a local update committed while the batch waited for it, not by the batch's snapshot", async () => {
    // Row 1 was last written by the other pipeline (not local) when the batch started; the local update commits after the incoming change.
    const counts = await racing("UPDATE app.items SET v = 'local, racing' WHERE id = 1", [upsert(1, "in", seeded.early)]);
    expect(await contents()).toMatchObject({ 1: "local, racing" });
    expect(counts).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "local", count: 1 }]);
  });

  it("does not bring back a row a local delete removed while the batch waited for it", async () => {
    const counts = await racing("DELETE FROM app.items WHERE id = 1", [upsert(1, "in", seeded.late)]);
    expect(await contents()).not.toHaveProperty("1");
    // An update-delete conflict: the deleting side keeps its delete.
    expect(counts).toEqual([{ table: "app.items", resolution: "last-writer-wins", kept: "local", count: 1 }]);
  });

  it("judges nothing while the opposite pipeline has no progress (floor null)", async () => {
    guard.next = { floor: null, commitTimes: [], appliedAt: [] };
    expect(await apply(batch(everyRow()))).toEqual([]);
    expect(await contents()).toEqual({ 1: "in", 2: "in", 3: "in", 4: "in", 5: "in", 6: "in" });
    expect(await conflicts()).toEqual([]);
  });

  it("stop: commits nothing of the batch, records the conflicts and fails with kind conflict", async () => {
    guard.resolution = "stop";
    const before = await contents();
    await applier.execute(batch(everyRow()));
    const error = await applier.commit({ commitLsn: 0n, endLsn: 0n, commitTime: null }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PgferryError);
    expect((error as PgferryError).kind).toBe("conflict");
    expect((error as PgferryError).message).toContain("app.items");
    expect((error as PgferryError).message).toMatch(new RegExp(`sha256 (${fingerprint("3")}|${fingerprint("6")})`));
    expect((error as PgferryError).message).toContain("1 more");
    expect((error as PgferryError).message).not.toContain("not yet carried");
    expect((error as PgferryError).hint).toContain("pgferry conflicts");
    // Not retried: the same batch would meet the same rows.
    expect(classify(error)).toMatchObject({ class: "fatal", disposition: "stop", kind: "conflict" });
    expect(await contents()).toEqual(before);
    const recorded = await conflicts();
    expect(recorded.map((r) => [r.key_fingerprint, r.kept, r.resolution, r.local])).toEqual(
      [
        [fingerprint("3"), "stopped", "stop", seeded.local[3].text],
        [fingerprint("6"), "stopped", "stop", seeded.local[6].text],
      ].sort((a, b) => a[0]!.localeCompare(b[0]!)),
    );
    // The session is usable again: the next transaction starts clean.
    guard.resolution = "last-writer-wins";
    expect(await apply(batch([upsert(4, "after", seeded.late, true)]))).toEqual([]);
    expect((await contents())[4]).toBe("after");
  });
});

describe("update-delete conflicts: a row the target deleted, updated by the incoming side", () => {
  it.each([
    ["last-writer-wins", "forward"],
    // The resolutions that prefer the incoming side keep the deletion all the same.
    ["prefer-old", "forward"],
    ["prefer-new", "reverse"],
  ] as const)("%s %s: the update does not bring the row back; the deletion is kept and recorded", async (resolution, direction) => {
    Object.assign(guard, { resolution, direction });
    const counts = await apply(batch([upsert(4, "in", seeded.late), upsert(5, "in", seeded.late)]));
    expect(await contents()).toEqual({ 1: "other pipeline", 2: "history", 3: "local", 5: "in", 6: "not yet carried" });
    expect(await conflicts()).toEqual([
      { pipeline: "main", direction, table_name: "app.items", key_columns: "id", key_fingerprint: fingerprint("4"), incoming: pgText(seeded.late), local: null, resolution, kept: "local" },
    ]);
    expect(counts).toEqual([{ table: "app.items", resolution, kept: "local", count: 1 }]);
  });

  it("an insert of a row the target does not have inserts it, with no conflict", async () => {
    expect(await apply(batch([upsert(4, "in", seeded.late, true)]))).toEqual([]);
    expect((await contents())[4]).toBe("in");
    expect(await conflicts()).toEqual([]);
  });

  it("an insert and an update of one row collapsed in a batch insert it", async () => {
    const statements = batch([upsert(4, "first", seeded.early, true), upsert(4, "second", seeded.late)]);
    expect(statements).toHaveLength(1);
    expect(await apply(statements)).toEqual([]);
    expect((await contents())[4]).toBe("second");
    expect(await conflicts()).toEqual([]);
  });

  it("stop: stops the batch like any other conflict", async () => {
    guard.resolution = "stop";
    const before = await contents();
    await applier.execute(batch([upsert(4, "in", seeded.late), upsert(7, "new", seeded.late, true)]));
    const error = await applier.commit({ commitLsn: 0n, endLsn: 0n, commitTime: null }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as PgferryError).kind).toBe("conflict");
    expect((error as PgferryError).message).toContain(`sha256 ${fingerprint("4")}`);
    expect(await contents()).toEqual(before);
    expect((await conflicts()).map((r) => [r.key_fingerprint, r.kept, r.resolution, r.local])).toEqual([[fingerprint("4"), "stopped", "stop", null]]);
  });

  it("judges nothing while the opposite pipeline has no progress: the row is inserted, as without a guard", async () => {
    guard.next = { floor: null, commitTimes: [], appliedAt: [] };
    expect(await apply(batch([upsert(4, "in", seeded.late)]))).toEqual([]);
    expect((await contents())[4]).toBe("in");
    expect(await conflicts()).toEqual([]);
  });
});

describe("unrouted changes", () => {
  const unrouted = (at: Date): ApplyChange => ({ kind: "unrouted", table: "sec.api_keys", keyColumns: ["source", "legacy_id"], key: ["api_keys", "42"], at });

  it("are recorded as conflicts kept local (nothing was written), and counted by the commit, whatever the resolution", async () => {
    const counts = await apply(batch([unrouted(seeded.late), upsert(5, "in", seeded.late)]));
    expect(counts).toEqual([{ table: "sec.api_keys", resolution: "last-writer-wins", kept: "local", count: 1 }]);
    // The same fingerprint the guarded statements compute of a key: its values joined by ', '.
    expect(await conflicts()).toEqual([
      { pipeline: "main", direction: "forward", table_name: "sec.api_keys", key_columns: "source, legacy_id", key_fingerprint: fingerprint("api_keys, 42"), incoming: pgText(seeded.late), local: null, resolution: "last-writer-wins", kept: "local" },
    ]);
    expect((await contents())[5]).toBe("in");
    // Alone in a transaction, and under stop: counted, not stopped (there is nothing to choose between).
    guard.resolution = "stop";
    guard.progressCalls = 0;
    expect(await apply(batch([unrouted(seeded.early)]))).toEqual([{ table: "sec.api_keys", resolution: "stop", kept: "local", count: 1 }]);
    expect(guard.progressCalls).toBe(0);
  });
});

describe("update-only targets", () => {
  it("updates rows that exist, reports and does not insert the others, and drops deletes", async () => {
    await db.target.query("INSERT INTO app.part (id, v, n) VALUES (1, 'a', 0), (2, 'b', 0)");
    const change = (id: number, v: string): TargetChange => ({ kind: "upsert", table: part, values: [String(id), v, "1"], at: seeded.late });
    for (const buffer of [new ChangeBuffer(), new ChangeBuffer({ guard })]) {
      for (const c of [change(1, "a2"), change(9, "new"), { kind: "delete", table: part, key: ["2"], at: seeded.late } as TargetChange]) buffer.add(c);
      await apply(buffer.drain());
    }
    expect(await contents("app.part")).toEqual({ 1: "a2", 2: "b" });
    expect(missing).toEqual([
      ["app.part", 1],
      ["app.part", 1],
    ]);
  });
});

/** `2026-01-01 10:00:00.120456+00` → `2026-01-01 10:00:00.12+00`: a commit time as the guard compares it. */
function toMillisecond(text: string): string {
  // Cut to the millisecond, then printed as PostgreSQL prints it: no trailing zeros, no empty fraction.
  return text.replace(/(\.\d{3})\d*/, "$1").replace(/(\.\d*?)0+(?=\+)/, "$1").replace(/\.(?=\+)/, "");
}
