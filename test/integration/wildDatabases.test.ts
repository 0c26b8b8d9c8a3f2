/**
 * Databases as users have them, not fresh clusters: non-default settings per database on both
 * sides (DateStyle, IntervalStyle, TimeZone, extra_float_digits, bytea_output), row-level security on
 * every table (Supabase-style policies on the source, FORCE tenant policies on the target),
 * GENERATED ALWAYS identity keys and generated columns on both sides, and the least-privilege roles of
 * docs/privileges.sql. The rule under test: the target ends exact, or preflight refuses with the cause
 * and the fix.
 *
 * The reorg example plus a "wild accounts" table (identity and generated columns, values whose text
 * depends on the session settings) run through a snapshot under load, streaming, SIGKILLs and
 * restarts, and `pgferry verify`; every target table ends equal to its expectation, read through
 * sessions with pinned settings.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { defaultPgBin } from "../../tools/embedded/localCluster.js";
import { expectedQueries, oldProjectLoad, seedOldProject, SOURCE_DDL, TARGET_DDL } from "../../tools/demo/oldProject.js";
import { openPool } from "../../src/sql/session.js";
import { firstDifference } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { runCli, writeConfigFile } from "../harness/processRunner.js";
import { waitFor } from "../harness/waitFor.js";

const execFileAsync = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
const PRIVILEGES_SQL = join(ROOT, "docs/privileges.sql");

const WILD_SOURCE_DDL = `
CREATE TABLE public.wild_accounts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL,
  price numeric(12,2) NOT NULL,
  qty int NOT NULL,
  total numeric GENERATED ALWAYS AS (price * qty) STORED,
  net numeric GENERATED ALWAYS AS (price * qty * 0.8) STORED,
  born date, span interval, ratio float8, blob bytea, seen_at timestamptz, local_at timestamp);`;
const WILD_TARGET_DDL = `
CREATE TABLE billing.wild_accounts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL,
  email_lower text GENERATED ALWAYS AS (lower(email)) STORED,
  price numeric(12,2) NOT NULL,
  qty int NOT NULL,
  total numeric,
  net numeric GENERATED ALWAYS AS (price * qty * 0.8) STORED,
  born date, span interval, ratio float8, blob bytea, seen_at timestamptz, local_at timestamp,
  row_no bigserial,
  tenant_id int NOT NULL DEFAULT 42);`;
const WILD_EXPECTED = {
  table: "billing.wild_accounts",
  source: `SELECT t::text AS t FROM (SELECT id, email, lower(email), price, qty, total, net, born, span, ratio, blob, seen_at, local_at, 42
           FROM public.wild_accounts) AS t ORDER BY 1`,
  target: `SELECT t::text AS t FROM (SELECT id, email, email_lower, price, qty, total, net, born, span, ratio, blob, seen_at, local_at, tenant_id
           FROM billing.wild_accounts) AS t ORDER BY 1`,
};

/**
 * A writer as an application on the source would be: its literals in the database's own styles
 * (DMY dates, sql_standard intervals, India's time zone), so a value printed in one style and parsed
 * in another would be caught.
 */
const WILD_WRITES = [
  `INSERT INTO public.wild_accounts (email, price, qty, born, span, ratio, blob, seen_at, local_at)
   VALUES ('User' || $1::int || '@Example.COM', ($1::int % 1000) / 7.0, $1::int % 9, '18/05/2027', '1 2:03:04.5', 0.1 + 0.2 + $1::int, '\\x00ff10'::bytea,
           '05/06/2027 10:30:00', '05/06/2027 23:59:59.999999')`,
  `UPDATE public.wild_accounts SET qty = qty + 1, span = span + '-1 12:00:00', ratio = ratio / 3, born = born + ($1::int % 40)
   WHERE id = (SELECT max(id) FROM public.wild_accounts) - $1::int % 5`,
  `UPDATE public.wild_accounts SET email = upper(email), seen_at = '31/12/1999 23:59:59.5' WHERE id % 7 = $1::int % 7`,
  `DELETE FROM public.wild_accounts WHERE id = (SELECT min(id) FROM public.wild_accounts) AND $1::int % 3 = 0`,
];

const SOURCE_SETTINGS = `DateStyle = 'SQL, DMY'; IntervalStyle = 'sql_standard'; TimeZone = 'Asia/Kolkata'; extra_float_digits = 0; bytea_output = 'escape'`;
const TARGET_SETTINGS = `DateStyle = 'German, DMY'; IntervalStyle = 'iso_8601'; TimeZone = 'America/Los_Angeles'; extra_float_digits = 0; bytea_output = 'escape'`;

let db: TestDatabases;
/** Sessions as the applications have them: the databases' own settings, taken after ALTER DATABASE. */
let appSource: pg.Pool;
/** Sessions with pgferry's pinned settings: what the comparisons read. */
let pinned: { source: pg.Pool; target: pg.Pool };
let configFile: string;
let roleEnv: Record<string, string>;

function withRole(url: string, role: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = "";
  return u.toString();
}

async function psqlPrivileges(url: string, variables: Record<string, string>): Promise<void> {
  const u = new URL(url);
  const args = ["-X", "-q", "-h", u.hostname, "-p", u.port, "-U", decodeURIComponent(u.username) || "postgres", "-d", u.pathname.slice(1)];
  for (const [key, value] of Object.entries(variables)) args.push("-v", `${key}=${value}`);
  await execFileAsync(join(defaultPgBin(), "psql"), [...args, "-f", PRIVILEGES_SQL], { timeout: 30_000, env: { ...process.env, PGPASSWORD: u.password } });
}

async function grantRoles(tables: { from: string; to: string }[], bypassrls: boolean): Promise<void> {
  const flag = bypassrls ? "on" : "off";
  const publication = `pgferry_${db.name}`; // the example names it after the slot
  await psqlPrivileges(db.sourceUrl, { side: "source", tables: [...new Set(tables.map((t) => t.from))].join(", "), publication, password: "x", bypassrls: flag });
  await psqlPrivileges(db.targetUrl, { side: "target", tables: [...new Set(tables.map((t) => t.to))].join(", "), password: "x", bypassrls: flag });
}

/** Row-level security on every table: Supabase's `auth.uid() = user_id` style at the source, forced tenant isolation at the target. */
async function enableRowSecurity(): Promise<void> {
  await db.source.query(`DO $$ DECLARE r record; BEGIN
    FOR r IN SELECT c.oid::regclass AS t FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') LOOP
      EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.t);
      EXECUTE format($p$CREATE POLICY owner_only ON %s FOR ALL TO PUBLIC USING (current_setting('request.jwt.claim.sub', true) = 'owner')$p$, r.t);
    END LOOP; END $$`);
  await db.target.query(`DO $$ DECLARE r record; BEGIN
    FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('public', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND c.relkind IN ('r', 'p') LOOP
      EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', r.t);
      EXECUTE format($p$CREATE POLICY tenant_isolation ON %s FOR ALL TO PUBLIC USING (current_setting('app.tenant_id', true) = '42')$p$, r.t);
    END LOOP; END $$`);
}

/**
 * Every single-column integer key without a default on the target becomes GENERATED ALWAYS AS
 * IDENTITY, the usual style of new schemas; except analytics.error_events, which is fed from a
 * REPLICA IDENTITY FULL source and so matched on whole rows, its id updated like any column (which an
 * ALWAYS identity refuses; the mapping compiler says so, see test/unit/mappingCompiler.test.ts).
 */
async function identityKeys(): Promise<number> {
  await db.target.query(`DO $$ DECLARE r record; BEGIN
    FOR r IN SELECT c.oid::regclass AS t, a.attname AS col FROM pg_index i
      JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indisprimary AND i.indnatts = 1 AND a.atttypid IN ('int4'::regtype, 'int8'::regtype) AND NOT a.atthasdef AND a.attidentity = ''
        AND n.nspname NOT IN ('public', 'pg_catalog', 'information_schema') AND c.oid <> 'analytics.error_events'::regclass LOOP
      EXECUTE format('ALTER TABLE %s ALTER COLUMN %I ADD GENERATED ALWAYS AS IDENTITY', r.t, r.col);
    END LOOP; END $$`);
  const { rows } = await db.target.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_attribute WHERE attidentity = 'a' AND attrelid > 16384");
  return rows[0]!.n;
}

async function wildWrites(pool: pg.Pool, count: number, offset: number): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    const n = offset + i;
    await pool.query(WILD_WRITES[n % WILD_WRITES.length]!, [n]);
  }
}

async function difference(): Promise<string | null> {
  for (const expected of [...expectedQueries(), WILD_EXPECTED]) {
    const [want, have] = await Promise.all([
      pinned.source.query<{ t: string }>(expected.source),
      pinned.target.query<{ t: string }>(expected.target),
    ]);
    const diff = firstDifference(want.rows.map((r) => r.t), have.rows.map((r) => r.t));
    if (diff) return `${expected.table}: ${diff}`;
  }
  return null;
}

async function readyTables(): Promise<number> {
  const { rows } = await pinned.target
    .query<{ n: number }>("SELECT count(*) FILTER (WHERE state = 'ready')::int AS n FROM _pgferry.tables")
    .catch(() => ({ rows: [{ n: 0 }] }));
  return rows[0]!.n;
}

beforeAll(async () => {
  db = await createTestDatabases("wild");
  await db.source.query(SOURCE_DDL + WILD_SOURCE_DDL);
  await db.target.query(TARGET_DDL + WILD_TARGET_DDL);
  await seedOldProject(db.source, 1);
  await enableRowSecurity();
  expect(await identityKeys()).toBeGreaterThan(15);
  for (const setting of SOURCE_SETTINGS.split("; ")) await db.source.query(`ALTER DATABASE ${db.name} SET ${setting}`);
  for (const setting of TARGET_SETTINGS.split("; ")) await db.target.query(`ALTER DATABASE ${db.name} SET ${setting}`);
  appSource = new pg.Pool({ connectionString: db.sourceUrl, max: 3 });
  pinned = {
    source: openPool(db.sourceUrl, { applicationName: "wild-test", max: 2 }),
    target: openPool(db.targetUrl, { applicationName: "wild-test", max: 2 }),
  };
  await wildWrites(appSource, 400, 0);

  // The example as a user has it, with the wild table added and the hook's path made absolute (the file is written elsewhere).
  const example = parse(await readFile(join(ROOT, "config/reorg.example.yaml"), "utf8")) as { tables: Record<string, unknown>[] } & Record<string, unknown>;
  for (const table of example.tables) if (typeof table.hook === "string") table.hook = join(ROOT, "config", table.hook);
  example.tables.push({ from: "public.wild_accounts", to: "billing.wild_accounts" });
  example.control = { listen: "127.0.0.1:0" };
  example.log = { level: "info", format: "json" };
  example.apply = { onError: "stop", retry: { maxAttempts: 100, initialDelayMs: 100, maxDelayMs: 1000 } };
  configFile = await writeConfigFile(stringify(example));
  const tables = example.tables.map((t) => ({ from: String(t.from), to: String(t.to) }));
  await grantRoles(tables, false);
  roleEnv = {
    SOURCE_URL: withRole(db.sourceUrl, "pgferry_source"),
    TARGET_URL: withRole(db.targetUrl, "pgferry_target"),
    PGFERRY_SLOT: `pgferry_${db.name}`,
  };
}, 180_000);

afterAll(async () => {
  await Promise.all([appSource?.end(), pinned?.source.end(), pinned?.target.end()]);
  await db?.drop();
});

describe("wild databases", () => {
  it("refuses at preflight, with the cause and the fix, every table whose row-level security applies to pgferry's roles, a missing sequence grant, and creates nothing", async () => {
    // docs/privileges.sql granted it; without it the snapshot's COPY would fail half-way on the serial default.
    await db.target.query("REVOKE USAGE ON SEQUENCE billing.wild_accounts_row_no_seq FROM pgferry_target");
    const check = runCli(["plan", "--check", "--config", configFile], roleEnv);
    const exited = await check.exited;
    const output = check.output.join("");
    expect(exited.code, output).toBe(1);
    const source = output.match(/source: row-level security is on for [^\n]+/g) ?? [];
    const target = output.match(/target: row-level security is on for [^\n]+/g) ?? [];
    // Every mapped table on each side, and on the source also the five partitions the snapshot reads directly.
    const config = parse(await readFile(configFile, "utf8")) as { tables: { from: string; to: string }[] };
    expect(source).toHaveLength(new Set(config.tables.map((t) => t.from)).size + 5);
    expect(target).toHaveLength(new Set(config.tables.map((t) => t.to)).size);
    expect(output).toContain(
      "source: row-level security is on for public.memory_entries: its policies apply to role pgferry_source, which does not own it, and the snapshot would copy only the rows they show; " +
        "give the role BYPASSRLS (as a superuser: ALTER ROLE pgferry_source BYPASSRLS, or docs/privileges.sql with -v bypassrls=on)",
    );
    expect(output).toContain("source: row-level security is on for public.usage_analytics_default (a partition of public.usage_analytics)");
    expect(output).toContain(
      "target: row-level security is on for billing.wild_accounts: its policies apply to role pgferry_target, which does not own it, and every write would be checked against them",
    );
    expect(output).toContain(
      "target: the role lacks USAGE on sequence billing.wild_accounts_row_no_seq, the default of billing.wild_accounts.row_no, which the mapping does not write " +
        "(GRANT USAGE ON SEQUENCE billing.wild_accounts_row_no_seq TO pgferry_target; see docs/privileges.sql)",
    );
    // verify reads through the same guard: a policy cannot make it compare fewer rows.
    const verify = runCli(["verify", "--config", configFile], roleEnv);
    const verified = await verify.exited;
    const verifyOutput = verify.output.join("");
    expect(verified.code, verifyOutput).toBe(1);
    expect(verifyOutput).toContain("row-level security would hide rows from the comparison");
    expect(verifyOutput).toContain("source: row-level security is on for public.memory_entries: its policies apply to role pgferry_source");
    const created = await Promise.all([
      db.source.query("SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"),
      db.target.query("SELECT relname FROM pg_class WHERE relnamespace = '_pgferry'::regnamespace"),
    ]);
    expect(created.map((r) => r.rowCount)).toEqual([0, 0]);
  });

  it("copies, streams through SIGKILLs and restarts, and verifies equal, with every database-level setting non-default", async () => {
    const tables = (parse(await readFile(configFile, "utf8")) as { tables: { from: string; to: string }[] }).tables;
    await grantRoles(tables, true);

    // The snapshot is taken while the source takes writes in its own styles.
    const controller = new AbortController();
    const load = oldProjectLoad(appSource, { transactions: 1_000_000, signal: controller.signal, seedOffset: 50_000_000 });
    load.catch(() => undefined);
    let offset = 400;
    const write = async (n: number) => {
      await wildWrites(appSource, n, offset);
      offset += n;
    };
    let run = runCli(["run", "--config", configFile], roleEnv);
    try {
      await waitFor(readyTables, { description: "every table copied", until: (n) => n === 28, timeoutMs: 90_000, intervalMs: 200 }).catch((error: Error) => {
        throw new Error(`${error.message}\n${run.output.join("").slice(-4000)}`);
      });
      for (let kill = 0; kill < 2; kill += 1) {
        await write(100);
        const streamed = await waitFor(difference, { description: "the streamed wild rows applied", until: (d) => d === null || !d.startsWith("billing.wild_accounts"), timeoutMs: 60_000, intervalMs: 200 });
        expect(streamed === null || !streamed.startsWith("billing.wild_accounts")).toBe(true);
        run.child.kill("SIGKILL");
        await run.exited;
        await write(50); // while it is down
        run = runCli(["run", "--config", configFile], roleEnv);
      }
      await write(100);
      // One row with every settings-dependent literal, written last so no later statement changes it.
      await appSource.query(
        `INSERT INTO public.wild_accounts (email, price, qty, born, span, ratio, blob, seen_at, local_at)
         VALUES ('fixed@example.com', 10.5, 3, '18/05/2027', '1 2:03:04.5', 0.1::float8 + 0.2::float8, '\\x00ff10'::bytea, '05/06/2027 10:30:00', '05/06/2027 23:59:59.999999')`,
      );
      controller.abort();
      expect(await load).toBeGreaterThan(20);
      const diff = await waitFor(difference, { description: "every target table == its expectation", until: (d) => d === null, timeoutMs: 90_000, intervalMs: 250 }).catch(
        (error: Error) => `${error.message}\n${run.output.join("").slice(-3000)}`,
      );
      expect(diff).toBeNull();

      // The values whose text depends on the settings arrived as the source holds them.
      const { rows } = await pinned.target.query<{ born: string; span: string; seen: string }>(
        `SELECT born::text AS born, span::text AS span, seen_at::text AS seen, local_at::text AS local, ratio::text AS ratio, encode(blob, 'hex') AS blob,
                total::text AS total, net::text AS net, email_lower, tenant_id
         FROM billing.wild_accounts WHERE email = 'fixed@example.com'`,
      );
      expect(rows).toEqual([{
        born: "2027-05-18", span: "1 day 02:03:04.5", seen: "2027-06-05 05:00:00+00", local: "2027-06-05 23:59:59.999999", ratio: "0.30000000000000004",
        blob: "00ff10", total: "31.50", net: "25.200", email_lower: "fixed@example.com", tenant_id: 42,
      }]);

      const verify = runCli(["verify", "--config", configFile], roleEnv);
      const verified = await verify.exited;
      expect(verified.code, verify.output.join("")).toBe(0);
    } finally {
      controller.abort();
      await load.catch(() => undefined);
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });
});
