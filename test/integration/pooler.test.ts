/**
 * A source or target URL that points at a transaction pooler fails preflight, naming the side and
 * saying that a direct connection is needed, before anything is created. The pooler is a real
 * PgBouncer (Debian's) in transaction mode, in front of each test server: as shipped (it refuses
 * startup parameters it does not know, such as `options` and `replication`) and with
 * `ignore_startup_parameters = extra_float_digits, options` (it accepts them and drops them).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { poolerError } from "../../src/sql/poolerRefusal.js";
import { ReplicationConnection } from "../../src/source/replicationConnection.js";
import { endpoint } from "../../src/sql/endpoint.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { startPgbouncer, type Pgbouncer } from "../harness/pgbouncer.js";
import { CLI, configYaml, writeConfigFile } from "../harness/processRunner.js";

const run = promisify(execFile);
const IGNORING = ["extra_float_digits", "options"];

let db: TestDatabases;
const bouncers: Pgbouncer[] = [];
let plain: { source: Pgbouncer; target: Pgbouncer };
let ignoring: { source: Pgbouncer; target: Pgbouncer };
let configFile: string;

beforeAll(async () => {
  db = await createTestDatabases("pooler");
  await db.source.query("CREATE TABLE items (id int PRIMARY KEY, v text)");
  await db.target.query("CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY, v text)");
  const servers = inject("pgServers");
  const start = async (url: string, ignoreStartupParameters?: readonly string[]) => {
    const bouncer = await startPgbouncer(url, { poolMode: "transaction", ignoreStartupParameters });
    bouncers.push(bouncer);
    return bouncer;
  };
  plain = { source: await start(servers.sourceUrl), target: await start(servers.targetUrl) };
  ignoring = { source: await start(servers.sourceUrl, IGNORING), target: await start(servers.targetUrl, IGNORING) };
  configFile = await writeConfigFile(configYaml([{ from: "public.items", to: "app.items" }]));
});
afterAll(async () => {
  await Promise.all(bouncers.map((b) => b.stop()));
  await db?.drop();
});

async function planCheck(sourceUrl: string, targetUrl: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, "plan", "--check", "--config", configFile], {
      env: { ...process.env, SOURCE_URL: sourceUrl, TARGET_URL: targetUrl },
      timeout: 60_000,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

async function createdNothing(): Promise<void> {
  const source = await db.source.query(
    "SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())::int AS slots, (SELECT count(*) FROM pg_publication)::int AS pubs",
  );
  expect(source.rows[0]).toEqual({ slots: 0, pubs: 0 });
  const target = await db.target.query("SELECT to_regnamespace('_pgferry') IS NULL AS absent");
  expect(target.rows[0]).toEqual({ absent: true });
}

const SOURCE_WHY = "Logical replication and the exported snapshot need a direct connection to PostgreSQL: point source.url at the PostgreSQL server itself";
const TARGET_WHY = "The target needs a direct, session-level connection to PostgreSQL (pgferry holds an advisory lock and session settings";
const DROPPED = "a -c setting sent in the startup options was missing from the session (dropped, as PgBouncer's ignore_startup_parameters = options does)";
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const SHARED = /two connections' transactions ran in the same server process \(pid \d+\), which is transaction pooling/;

describe("a URL that points at a transaction pooler", () => {
  // PgBouncer as shipped refuses pgferry's first connection (its pinned settings are startup
  // options): whether that is in preflight's probe or in the command's own pool, the message is the same.
  it("source.url through PgBouncer: plan --check fails naming the source, and creates nothing", async () => {
    const url = plain.source.url(db.name);
    const result = await planCheck(url, db.targetUrl);
    expect(result.code, result.output).toBe(1);
    expect(result.output).toMatch(
      new RegExp(`source\\.url: ${literal(url)} goes through a connection pooler: PgBouncer refused (a|a replication) connection with "unsupported startup parameter: (options|replication)"`),
    );
    expect(result.output).toContain(SOURCE_WHY);
    expect(result.output).toContain("Supabase: the direct host db.<project>.supabase.co on port 5432");
    expect(result.output).toContain("Neon: the endpoint host without -pooler");
    expect(result.output).not.toContain("target.url:");
    await createdNothing();
  });

  it("source.url through a PgBouncer that drops startup options: the same, with what it found", async () => {
    const url = ignoring.source.url(db.name);
    const result = await planCheck(url, db.targetUrl);
    expect(result.code, result.output).toBe(1);
    expect(result.output).toContain("check: 1 problem(s):");
    expect(result.output).toContain(`  - source.url: ${url} goes through a connection pooler: PgBouncer refused a replication connection with "unsupported startup parameter: replication"; ${DROPPED}; `);
    expect(result.output).toMatch(SHARED);
    expect(result.output).toContain(SOURCE_WHY);
    expect(result.output).not.toContain("target.url:");
    await createdNothing();
  });

  it("target.url through PgBouncer: plan --check fails naming the target, and creates nothing", async () => {
    const url = plain.target.url(db.name);
    const result = await planCheck(db.sourceUrl, url);
    expect(result.code, result.output).toBe(1);
    expect(result.output).toContain(`target.url: ${url} goes through a connection pooler: PgBouncer refused a connection with "unsupported startup parameter: options". ${TARGET_WHY}`);
    expect(result.output).toContain("point target.url at the PostgreSQL server itself");
    expect(result.output).not.toContain("source.url:");
    await createdNothing();
  });

  it("target.url through a PgBouncer that drops startup options: the same, with what it found", async () => {
    const url = ignoring.target.url(db.name);
    const result = await planCheck(db.sourceUrl, url);
    expect(result.code, result.output).toBe(1);
    expect(result.output).toContain("check: 1 problem(s):");
    expect(result.output).toContain(`  - target.url: ${url} goes through a connection pooler: ${DROPPED}; `);
    expect(result.output).toMatch(SHARED);
    expect(result.output).toContain(TARGET_WHY);
    expect(result.output).not.toContain("source.url:");
    await createdNothing();
  });

  it("both through PgBouncer: one problem per side", async () => {
    const result = await planCheck(ignoring.source.url(db.name), ignoring.target.url(db.name));
    expect(result.code, result.output).toBe(1);
    expect(result.output).toContain("check: 2 problem(s):");
    expect(result.output).toMatch(/^ {2}- source\.url: .* goes through a connection pooler: /m);
    expect(result.output).toMatch(/^ {2}- target\.url: .* goes through a connection pooler: /m);
    await createdNothing();
  });

  it("direct URLs pass", async () => {
    const result = await planCheck(db.sourceUrl, db.targetUrl);
    expect(result.output).toContain("check: no problems found");
    expect(result.code, result.output).toBe(0);
    await createdNothing();
  });

  it("a replication connection opened through PgBouncer fails with the pooler message, PgBouncer's words as its cause", async () => {
    const url = plain.source.url(db.name);
    const error = await ReplicationConnection.connect(endpoint("source", url), "pgferry-test").then(
      async (connection) => {
        await connection.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    // The endpoint translates the refusal itself (sql/endpoint.ts), so every connection pgferry opens says the same.
    const refusal = (error as { cause?: unknown }).cause;
    expect(refusal).toMatchObject({ message: expect.stringMatching(/^unsupported startup parameter: (replication|options)$/) as unknown, code: "08P01", severity: "FATAL" });
    expect(error).toMatchObject({ kind: "preflight" });
    expect(error).toEqual(poolerError("source", url, refusal));
    expect((error as Error).message).toBe(
      `source.url: ${url} goes through a connection pooler: PgBouncer refused a connection with "${(refusal as Error).message}". ` +
        `${SOURCE_WHY}, not at PgBouncer, Supavisor or another pooler (Supabase: the direct host db.<project>.supabase.co on port 5432, not *.pooler.supabase.com or port 6543; Neon: the endpoint host without -pooler)`,
    );
  });
});
