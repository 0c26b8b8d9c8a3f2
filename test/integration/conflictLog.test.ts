/**
 * The conflict and progress logs on real PostgreSQL: the state schema's migrations create them;
 * conflicts inserted as the guarded statements insert them are listed, summarised and counted as
 * unresolved; progress is recorded in the apply transaction, pruned, and read back downsampled and
 * ascending; a missing state schema reads as nothing recorded. `pgferry conflicts` (the built CLI, as
 * an operator runs it) reports both directions, as text and JSON. The PgferryConflicts alert fires on
 * a table's first conflict as on any later one (promtool's rule tests).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ConflictLog, type ConflictRecord, type ConflictSummary } from "../../src/state/conflictLog.js";
import { postgresStores } from "../../src/state/postgresStores.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { CLI, configYaml, writeConfigFile } from "../harness/processRunner.js";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
let db: TestDatabases;

beforeAll(async () => {
  db = await createTestDatabases("conflict_log");
});
afterAll(async () => db?.drop());

interface Conflict {
  pipeline: string;
  direction: "forward" | "reverse";
  table: string;
  keyColumns?: string;
  fingerprint: string;
  incoming?: string | null;
  local?: string | null;
  resolution?: string;
  kept: "incoming" | "local" | "stopped";
  /** Left to the column default (now()) when absent, as the guarded statements leave it. */
  detectedAt?: string;
}

/** One conflict row, as a guarded statement inserts it: xid and (unless given) detected_at by default. */
async function insertConflict(pool: pg.Pool, schema: string, c: Conflict): Promise<void> {
  const columns = ["pipeline", "direction", "table_name", "key_columns", "key_fingerprint", "incoming_commit_time", "local_commit_time", "resolution", "kept"];
  const values: unknown[] = [c.pipeline, c.direction, c.table, c.keyColumns ?? "id", c.fingerprint, c.incoming ?? null, c.local ?? null, c.resolution ?? "last-writer-wins", c.kept];
  if (c.detectedAt !== undefined) {
    columns.push("detected_at");
    values.push(c.detectedAt);
  }
  await pool.query(`INSERT INTO "${schema}".conflicts (${columns.join(", ")}) VALUES (${values.map((_, i) => `$${i + 1}`).join(", ")})`, values);
}

async function migrate(pool: pg.Pool, schema: string, pipeline = "unused"): Promise<void> {
  await postgresStores({ pool, schema, pipeline }).checkpoints.migrate();
}

describe("state schema migrations", () => {
  it("add the conflict log (checked columns, an index by pipeline and time) and the progress log at versions 4 and 5", async () => {
    await migrate(db.target, "migrated");
    const { rows: version } = await db.target.query<{ version: number }>(`SELECT version FROM migrated.schema_version`);
    // Later steps (verifications 6, cutover_steps 7, deferred_indexes 8) come on top.
    expect(version.map((r) => r.version)).toEqual([8]);
    const { rows: tables } = await db.target.query<{ relname: string }>(
      "SELECT relname FROM pg_class WHERE relnamespace = 'migrated'::regnamespace AND relkind = 'r' ORDER BY relname",
    );
    expect(tables.map((r) => r.relname)).toEqual(["conflicts", "cutover_steps", "deferred_indexes", "pipelines", "progress", "resyncs", "schema_version", "tables", "verifications"]);
    const { rows: index } = await db.target.query<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE schemaname = 'migrated' AND tablename = 'conflicts' AND indexname <> 'conflicts_pkey'");
    expect(index.map((r) => r.indexdef)).toEqual(["CREATE INDEX conflicts_pipeline_detected_at ON migrated.conflicts USING btree (pipeline, detected_at)"]);
    // A second run changes nothing; bad values are refused by the table, not only by the code.
    await migrate(db.target, "migrated");
    await expect(insertConflict(db.target, "migrated", { pipeline: "p", direction: "sideways" as "forward", table: "t", fingerprint: "f", kept: "local" })).rejects.toMatchObject({ code: "23514" });
    await expect(insertConflict(db.target, "migrated", { pipeline: "p", direction: "forward", table: "t", fingerprint: "f", kept: "both" as "local" })).rejects.toMatchObject({ code: "23514" });
    // xid and detected_at are the inserting transaction's.
    const client = new pg.Client({ connectionString: db.targetUrl });
    await client.connect();
    try {
      await client.query("BEGIN");
      const { rows: tx } = await client.query<{ xid: string; now: Date }>("SELECT pg_current_xact_id()::text AS xid, now()");
      await client.query("INSERT INTO migrated.conflicts (pipeline, direction, table_name, key_columns, key_fingerprint, resolution, kept) VALUES ('p', 'forward', 't', 'id', 'f', 'stop', 'stopped')");
      await client.query("COMMIT");
      const [record] = await new ConflictLog({ pool: db.target, schema: "migrated" }).list({ limit: 1 });
      expect(record).toMatchObject({ xid: tx[0]!.xid, detectedAt: tx[0]!.now, kept: "stopped", incomingCommitTime: null, localCommitTime: null });
    } finally {
      await client.end();
    }
  });
});

describe("ConflictLog", () => {
  const schema = "conflict_api";
  const log = () => new ConflictLog({ pool: db.target, schema });

  beforeAll(async () => {
    await migrate(db.target, schema);
    const rows: Conflict[] = [
      { pipeline: "fwd", direction: "forward", table: "app.accounts", fingerprint: "a1", incoming: "2026-11-20T10:00:00.123456Z", local: "2026-11-20T09:59:59Z", kept: "incoming", detectedAt: "2026-11-20T10:00:01Z" },
      { pipeline: "fwd", direction: "forward", table: "app.accounts", fingerprint: "a2", kept: "local", detectedAt: "2026-11-20T10:00:02Z" },
      { pipeline: "fwd", direction: "forward", table: "app.items", keyColumns: "id, account_id", fingerprint: "i1", kept: "local", detectedAt: "2026-11-20T10:00:03Z" },
      { pipeline: "fwd", direction: "forward", table: "app.accounts", fingerprint: "a3", resolution: "stop", kept: "stopped", detectedAt: "2026-11-20T10:00:04Z" },
      { pipeline: "other", direction: "forward", table: "app.accounts", fingerprint: "o1", kept: "local", detectedAt: "2026-11-20T10:00:05Z" },
      { pipeline: "other", direction: "forward", table: "app.accounts", fingerprint: "o2", resolution: "stop", kept: "stopped", detectedAt: "2026-11-20T10:00:06Z" },
    ];
    for (const row of rows) await insertConflict(db.target, schema, row);
  });

  it("lists conflicts newest first, filtered by pipeline, direction, table and time, up to the limit", async () => {
    const fingerprints = (records: ConflictRecord[]) => records.map((r) => r.keyFingerprint);
    expect(fingerprints(await log().list({ limit: 10 }))).toEqual(["o2", "o1", "a3", "i1", "a2", "a1"]);
    expect(fingerprints(await log().list({ pipeline: "fwd", limit: 10 }))).toEqual(["a3", "i1", "a2", "a1"]);
    expect(fingerprints(await log().list({ pipeline: "fwd", table: "app.accounts", limit: 2 }))).toEqual(["a3", "a2"]);
    expect(fingerprints(await log().list({ pipeline: "fwd", since: new Date("2026-11-20T10:00:02Z"), limit: 10 }))).toEqual(["a3", "i1", "a2"]);
    expect(fingerprints(await log().list({ direction: "reverse", limit: 10 }))).toEqual([]);
    const [first] = await log().list({ pipeline: "fwd", table: "app.accounts", since: new Date("2026-11-20T10:00:01Z"), limit: 10 }).then((r) => r.slice(-1));
    expect(first).toEqual({
      id: expect.stringMatching(/^\d+$/) as string,
      pipeline: "fwd",
      direction: "forward",
      table: "app.accounts",
      keyColumns: "id",
      keyFingerprint: "a1",
      incomingCommitTime: new Date("2026-11-20T10:00:00.123Z"),
      localCommitTime: new Date("2026-11-20T09:59:59Z"),
      resolution: "last-writer-wins",
      kept: "incoming",
      xid: expect.stringMatching(/^\d+$/) as string,
      detectedAt: new Date("2026-11-20T10:00:01Z"),
    } satisfies ConflictRecord);
  });

  it("summarises per direction, table, resolution and side kept, and counts the unresolved", async () => {
    const summary = (rows: ConflictSummary[]) => rows.map((s) => [s.direction, s.table, s.resolution, s.kept, s.count, s.lastDetectedAt.toISOString()]);
    expect(summary(await log().summary({ pipeline: "fwd" }))).toEqual([
      ["forward", "app.accounts", "last-writer-wins", "incoming", 1, "2026-11-20T10:00:01.000Z"],
      ["forward", "app.accounts", "last-writer-wins", "local", 1, "2026-11-20T10:00:02.000Z"],
      ["forward", "app.accounts", "stop", "stopped", 1, "2026-11-20T10:00:04.000Z"],
      ["forward", "app.items", "last-writer-wins", "local", 1, "2026-11-20T10:00:03.000Z"],
    ]);
    expect(summary(await log().summary({ since: new Date("2026-11-20T10:00:04Z") }))).toEqual([
      ["forward", "app.accounts", "last-writer-wins", "local", 1, "2026-11-20T10:00:05.000Z"],
      ["forward", "app.accounts", "stop", "stopped", 2, "2026-11-20T10:00:06.000Z"],
    ]);
    expect(await log().unresolved()).toBe(2);
    expect(await log().unresolved("fwd")).toBe(1);
    expect(await log().unresolved("nobody")).toBe(0);
  });

  it("reads a missing state schema or log as nothing recorded", async () => {
    await db.target.query("CREATE SCHEMA bare");
    for (const missing of ["no_such_schema", "bare"]) {
      const empty = new ConflictLog({ pool: db.target, schema: missing });
      expect(await empty.list({ limit: 5 })).toEqual([]);
      expect(await empty.summary()).toEqual([]);
      expect(await empty.unresolved()).toBe(0);
      expect(await empty.pipelineCreatedAt("fwd")).toBeNull();
      expect(await empty.readProgress(db.target, "fwd", new Date(0))).toEqual({ commitTimes: [], appliedAt: [] });
    }
    // On a client (perhaps inside a transaction, which the error aborts) a missing table is an error.
    const client = new pg.Client({ connectionString: db.targetUrl });
    await client.connect();
    try {
      await expect(new ConflictLog({ pool: db.target, schema: "bare" }).readProgress(client, "fwd", new Date(0))).rejects.toMatchObject({ code: "42P01" });
    } finally {
      await client.end();
    }
  });

  it("tells when a pipeline's state was created, null before", async () => {
    expect(await log().pipelineCreatedAt("fwd")).toBeNull();
    const before = Date.now();
    await postgresStores({ pool: db.target, schema, pipeline: "fwd" }).checkpoints.create(0x1000n, ["public.accounts"]);
    const created = await log().pipelineCreatedAt("fwd");
    expect(created).toBeInstanceOf(Date);
    expect(Math.abs(created!.getTime() - before)).toBeLessThan(10_000);
    expect(await log().pipelineCreatedAt("other")).toBeNull();
  });
});

describe("progress", () => {
  const schema = "progress_api";
  const log = () => new ConflictLog({ pool: db.target, schema });

  async function inTransaction(outcome: "COMMIT" | "ROLLBACK", work: (client: pg.Client) => Promise<void>): Promise<void> {
    const client = new pg.Client({ connectionString: db.targetUrl });
    await client.connect();
    try {
      await client.query("BEGIN");
      await work(client);
      await client.query(outcome);
    } finally {
      await client.end();
    }
  }

  /** Entries with chosen applied_at: in the future, so the commit timestamp (now) is not later than them. */
  async function entries(pipeline: string, pairs: [commitTime: string, appliedAt: string][]): Promise<void> {
    for (const [commitTime, appliedAt] of pairs) {
      await db.target.query(`INSERT INTO ${schema}.progress (pipeline, commit_time, applied_at) VALUES ($1, $2, $3)`, [pipeline, commitTime, appliedAt]);
    }
  }

  const iso = (times: (Date | string)[]) => times.map((t) => new Date(t).toISOString());

  beforeAll(async () => {
    await migrate(db.target, schema);
  });

  it("is recorded with the apply transaction, once per commit time, and applied at that transaction's commit", async () => {
    const commitTime = new Date("2026-11-20T10:00:00.250Z");
    await inTransaction("ROLLBACK", (client) => log().recordProgress(client, "rec", commitTime));
    expect(await log().readProgress(db.target, "rec", new Date(0))).toEqual({ commitTimes: [], appliedAt: [] });
    await inTransaction("COMMIT", (client) => log().recordProgress(client, "rec", commitTime));
    await inTransaction("COMMIT", (client) => log().recordProgress(client, "rec", commitTime));
    const { rows } = await db.target.query<{ applied_at: Date; committed: Date }>(
      `SELECT applied_at, pg_xact_commit_timestamp(xmin) AS committed FROM ${schema}.progress WHERE pipeline = 'rec'`,
    );
    expect(rows).toHaveLength(1);
    // applied_at is taken before COMMIT; what the opposite pipeline compares with is the commit itself.
    expect(rows[0]!.committed.getTime()).toBeGreaterThanOrEqual(rows[0]!.applied_at.getTime());
    const read = await log().readProgress(db.target, "rec", new Date("2026-11-20T10:00:00Z"));
    expect(read).toEqual({ commitTimes: ["2026-11-20T10:00:00.250000Z"], appliedAt: [rows[0]!.committed] });
    expect(await log().readProgress(db.target, "rec", new Date("2026-11-20T10:00:01Z"))).toEqual({ commitTimes: [], appliedAt: [] });
  });

  it("keeps the source's commit time to the microsecond", async () => {
    // 2026-11-20T10:00:00.250123Z in microseconds since 2000-01-01 UTC, as pgoutput sends it.
    const micros = BigInt(Date.parse("2026-11-20T10:00:00.250Z") - Date.parse("2000-01-01T00:00:00Z")) * 1000n + 123n;
    await inTransaction("COMMIT", (client) => log().recordProgress(client, "exact", new Date("2026-11-20T10:00:00.250Z"), micros));
    expect((await log().readProgress(db.target, "exact", new Date(0))).commitTimes).toEqual(["2026-11-20T10:00:00.250123Z"]);
  });

  it("is read ascending from `since`, one entry per second applied (the latest commit of that second)", async () => {
    await entries("down", [
      ["2026-11-20T09:59:59.000Z", "2099-01-01T00:00:00.050Z"], // before `since`
      ["2026-11-20T10:00:00.000Z", "2099-01-01T00:00:00.100Z"],
      ["2026-11-20T10:00:00.300Z", "2099-01-01T00:00:00.400Z"],
      ["2026-11-20T10:00:00.600Z", "2099-01-01T00:00:00.900Z"], // kept for second 0
      ["2026-11-20T10:00:01.000Z", "2099-01-01T00:00:01.200Z"],
      ["2026-11-20T10:00:01.100Z", "2099-01-01T00:00:01.050Z"], // kept for second 1: the larger commit time
      ["2026-11-20T10:00:05.000Z", "2099-01-01T00:00:03.000Z"],
    ]);
    await entries("elsewhere", [["2026-11-20T10:00:02.000Z", "2099-01-01T00:00:02.000Z"]]);
    const read = await log().readProgress(db.target, "down", new Date("2026-11-20T10:00:00Z"));
    expect(iso(read.commitTimes)).toEqual(["2026-11-20T10:00:00.600Z", "2026-11-20T10:00:01.100Z", "2026-11-20T10:00:05.000Z"]);
    expect(iso(read.appliedAt)).toEqual(["2099-01-01T00:00:00.900Z", "2099-01-01T00:00:01.050Z", "2099-01-01T00:00:03.000Z"]);
  });

  it("says each commit was applied no earlier than any later commit was (appliedAt ascends too)", async () => {
    await entries("skew", [
      ["2026-11-20T10:00:00.000Z", "2099-01-01T00:00:05.000Z"],
      ["2026-11-20T10:00:01.000Z", "2099-01-01T00:00:02.000Z"],
    ]);
    const read = await log().readProgress(db.target, "skew", new Date(0));
    expect(iso(read.commitTimes)).toEqual(["2026-11-20T10:00:00.000Z", "2026-11-20T10:00:01.000Z"]);
    expect(iso(read.appliedAt)).toEqual(["2099-01-01T00:00:02.000Z", "2099-01-01T00:00:02.000Z"]);
  });

  it("drops a pipeline's entries older than an hour on the first record and every 500th after", async () => {
    const old = (pipeline: string, commitTime: string) =>
      db.target.query(`INSERT INTO ${schema}.progress (pipeline, commit_time, applied_at) VALUES ($1, $2, clock_timestamp() - interval '2 hours')`, [pipeline, commitTime]);
    const commits = async (pipeline: string) =>
      (await db.target.query<{ commit_time: Date }>(`SELECT commit_time FROM ${schema}.progress WHERE pipeline = $1 ORDER BY commit_time`, [pipeline])).rows.map((r) => r.commit_time.toISOString());
    await old("pruned", "2026-11-20T08:00:00.000Z");
    await old("kept", "2026-11-20T08:00:00.000Z");
    const pruning = log();
    await inTransaction("COMMIT", (client) => pruning.recordProgress(client, "pruned", new Date("2026-11-20T10:00:00Z")));
    expect(await commits("pruned")).toEqual(["2026-11-20T10:00:00.000Z"]);
    expect(await commits("kept")).toEqual(["2026-11-20T08:00:00.000Z"]);
    await old("pruned", "2026-11-20T08:30:00.000Z");
    for (let i = 1; i < 500; i += 1) {
      await inTransaction("COMMIT", (client) => pruning.recordProgress(client, "pruned", new Date(Date.parse("2026-11-20T10:00:00Z") + i)));
    }
    expect((await commits("pruned"))[0]).toBe("2026-11-20T08:30:00.000Z");
    await inTransaction("COMMIT", (client) => pruning.recordProgress(client, "pruned", new Date("2026-11-20T11:00:00Z")));
    expect((await commits("pruned"))[0]).toBe("2026-11-20T10:00:00.000Z");
    expect(await commits("pruned")).toHaveLength(501);
  });
});

describe("pgferry conflicts", () => {
  const slot = "pgferry_conflicts_fwd";
  const reverseSlot = "pgferry_conflicts_rev";
  const tables = [{ from: "public.accounts", to: "app.accounts" }];
  const env = () => ({ SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
  let both: string;
  let forwardOnly: string;

  async function cli(file: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, "conflicts", "--config", file, ...args], { env: { ...process.env, ...env() }, timeout: 20_000 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  }

  beforeAll(async () => {
    // The forward pipeline's log on the target, the reverse's on the source, both in _pgferry.
    await migrate(db.target, "_pgferry");
    await migrate(db.source, "_pgferry");
    const old = "2026-01-01T00:00:00Z";
    await insertConflict(db.target, "_pgferry", { pipeline: slot, direction: "forward", table: "app.accounts", fingerprint: "f-old", incoming: "2025-12-31T23:59:59Z", local: "2025-12-31T23:59:58Z", kept: "incoming", detectedAt: old });
    await insertConflict(db.target, "_pgferry", { pipeline: slot, direction: "forward", table: "app.accounts", fingerprint: "f-new", kept: "local" });
    await insertConflict(db.target, "_pgferry", { pipeline: slot, direction: "forward", table: "app.items", keyColumns: "id, account_id", fingerprint: "f-items", kept: "incoming" });
    await insertConflict(db.target, "_pgferry", { pipeline: "someone_else", direction: "forward", table: "app.accounts", fingerprint: "x", kept: "local" });
    await insertConflict(db.source, "_pgferry", { pipeline: reverseSlot, direction: "reverse", table: "public.accounts", fingerprint: "r-local", kept: "local" });
    await insertConflict(db.source, "_pgferry", { pipeline: reverseSlot, direction: "reverse", table: "public.accounts", fingerprint: "r-stop", resolution: "stop", kept: "stopped" });
    both = await writeConfigFile(configYaml(tables, `reverse:\n  slot: ${reverseSlot}\n  publication: ${reverseSlot}\n`, slot));
    forwardOnly = await writeConfigFile(configYaml(tables, "", slot));
  });

  it("prints a summary per direction and the most recent conflicts, newest first, without row values", async () => {
    const { code, stdout, stderr } = await cli(both);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    const lines = stdout.split("\n");
    expect(lines.slice(0, 3)).toEqual([
      `forward: pipeline ${slot}, log in schema _pgferry on the target database: 3 conflicts recorded`,
      `reverse: pipeline ${reverseSlot}, log in schema _pgferry on the source database: 2 conflicts recorded`,
      "  1 unresolved (kept: stopped, ever): the pipeline stopped there without applying that batch (reverse.conflicts: stop)",
    ]);
    expect(stdout).toMatch(/^DIRECTION\s+TABLE\s+RESOLUTION\s+KEPT\s+COUNT\s+LAST$/m);
    expect(stdout).toMatch(/^forward\s+app\.accounts\s+last-writer-wins\s+incoming\s+1\s+2026-01-01T00:00:00\.000Z$/m);
    expect(stdout).toMatch(/^forward\s+app\.accounts\s+last-writer-wins\s+local\s+1\s+\S+Z$/m);
    expect(stdout).toMatch(/^reverse\s+public\.accounts\s+stop\s+stopped\s+1\s+\S+Z$/m);
    expect(stdout).toContain("most recent 5 (newest first):");
    expect(stdout).toMatch(/^DETECTED\s+DIRECTION\s+TABLE\s+KEY COLUMNS\s+KEY FINGERPRINT\s+INCOMING COMMIT\s+LOCAL COMMIT\s+RESOLUTION\s+KEPT$/m);
    expect(stdout).toMatch(/^2026-01-01T00:00:00\.000Z\s+forward\s+app\.accounts\s+id\s+f-old\s+2025-12-31T23:59:59\.000Z\s+2025-12-31T23:59:58\.000Z\s+last-writer-wins\s+incoming$/m);
    expect(stdout).toMatch(/^\S+Z\s+forward\s+app\.items\s+id, account_id\s+f-items\s+–\s+–\s+last-writer-wins\s+incoming$/m);
    // The oldest is last; the other pipeline sharing the schema is not shown.
    expect(lines.filter((l) => /^\d{4}-/.test(l)).at(-1)).toMatch(/f-old/);
    expect(stdout).not.toContain("someone_else");
  });

  it("prints JSON, and narrows by direction, table, time and count", async () => {
    const json = await cli(both, "--json");
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { since: string | null; directions: unknown[]; summary: { count: number }[]; conflicts: { keyFingerprint: string; detectedAt: string; direction: string }[] };
    expect(report.since).toBeNull();
    expect(report.directions).toEqual([
      { direction: "forward", database: "target", stateSchema: "_pgferry", pipeline: slot, unresolved: 0 },
      { direction: "reverse", database: "source", stateSchema: "_pgferry", pipeline: reverseSlot, unresolved: 1 },
    ]);
    expect(report.summary.reduce((sum, s) => sum + s.count, 0)).toBe(5);
    expect(report.conflicts.map((c) => c.keyFingerprint).sort()).toEqual(["f-items", "f-new", "f-old", "r-local", "r-stop"]);
    const times = report.conflicts.map((c) => Date.parse(c.detectedAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));

    const narrow = await cli(both, "--json", "--since", "1h", "--direction", "forward", "--table", "app.accounts");
    const narrowed = JSON.parse(narrow.stdout) as typeof report;
    expect(Date.now() - Date.parse(narrowed.since!)).toBeGreaterThanOrEqual(3_600_000);
    expect(narrowed.directions).toHaveLength(1);
    expect(narrowed.conflicts.map((c) => c.keyFingerprint)).toEqual(["f-new"]);

    const limited = JSON.parse((await cli(both, "--json", "--limit", "2")).stdout) as typeof report;
    expect(limited.conflicts).toHaveLength(2);
    expect(limited.conflicts.map((c) => c.keyFingerprint)).not.toContain("f-old");
  });

  it("reports the forward direction alone without a reverse section, and refuses --direction reverse", async () => {
    const text = await cli(forwardOnly, "--since", "2026-06-01T00:00Z");
    expect(text.code).toBe(0);
    expect(text.stdout.split("\n").slice(0, 2)).toEqual([
      `forward: pipeline ${slot}, log in schema _pgferry on the target database: 2 conflicts since 2026-06-01T00:00:00.000Z`,
      "reverse: not configured (the config has no reverse section)",
    ]);
    const refused = await cli(forwardOnly, "--direction", "reverse");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--direction reverse: the config has no reverse section");
  });
});

describe("the PgferryConflicts alert", () => {
  it("fires on a table's first conflict since pgferry started and on any later one, and clears after 5 minutes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgferry-rules-"));
    try {
      const labels = { job: "pgferry", instance: "a:9187", table: "app.accounts", direction: "forward", resolution: "last-writer-wins", kept: "local" };
      // The annotations as Prometheus renders them: the rule's templates with these labels.
      const rules = parse(await readFile(join(ROOT, "deploy/prometheus/alerts.yml"), "utf8")) as { groups: { rules: { alert: string; annotations: Record<string, string> }[] }[] };
      const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === "PgferryConflicts")!;
      const annotations = Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l as keyof typeof labels])]));
      // JSON is YAML's flow style.
      const firing = JSON.stringify([{ exp_labels: { ...labels, severity: "warning" }, exp_annotations: annotations }]);
      await writeFile(join(dir, "test.yml"), `rule_files: [${JSON.stringify(join(ROOT, "deploy/prometheus/alerts.yml"))}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'pgferry_conflicts_total{job="pgferry",instance="a:9187",table="app.accounts",direction="forward",resolution="last-writer-wins",kept="local"}'
        values: '_ _ _ 1 1 1 1 1 1 1 1 1 1 3 3'
    alert_rule_test:
      - { eval_time: 2m, alertname: PgferryConflicts, exp_alerts: [] }
      - { eval_time: 4m, alertname: PgferryConflicts, exp_alerts: ${firing} }
      - { eval_time: 11m, alertname: PgferryConflicts, exp_alerts: [] }
      - { eval_time: 14m, alertname: PgferryConflicts, exp_alerts: ${firing} }
`);
      const { stdout } = await run("promtool", ["test", "rules", join(dir, "test.yml")]).catch((error: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`promtool test rules failed (installed by scripts/install-test-tools.sh): ${error.stdout ?? ""}${error.stderr ?? error.message}`);
      });
      expect(stdout).toContain("SUCCESS");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
