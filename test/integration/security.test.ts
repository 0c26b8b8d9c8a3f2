/**
 * Security: TLS with sslmode=verify-full to both databases, the least-privilege roles of
 * docs/privileges.sql actually used (snapshot, streaming, restart), preflight's errors for each
 * missing privilege, and log output scanned for passwords, the admin token and row values.
 *
 * Runs on its own pair of clusters that accept TCP only over TLS with SCRAM passwords (plain `host`
 * connections are rejected), so the shared test servers keep their trust setup. The test's own
 * set-up goes through the unix socket as the superuser.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { chown, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultPgBin, freePort, LocalCluster } from "../../tools/embedded/localCluster.js";
import { PgferryError } from "../../src/errors.js";
import { PreflightError } from "../../src/pipeline/preflight.js";
import { ReplicationConnection } from "../../src/source/replicationConnection.js";
import { endpoint } from "../../src/sql/endpoint.js";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import { startPipeline, streaming, testConfig, type RunningPipeline } from "../harness/pipelineRunner.js";
import { configYaml, runCli, writeConfigFile, type ChildRun } from "../harness/processRunner.js";
import { createTestCertificates, postgresOwner, type TestCertificates } from "../harness/tls.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

const execFileAsync = promisify(execFile);
const PRIVILEGES_SQL = resolve(import.meta.dirname, "../../docs/privileges.sql");

// Every secret contains "S3cr3t", so one pattern finds any of them in a log.
const ADMIN_PASSWORD = "Adm1n-S3cr3t-XYZ";
const SOURCE_PASSWORD = "S3cr3t-p4ss-XYZ-src";
const TARGET_PASSWORD = "S3cr3t-p4ss-XYZ-tgt";
const WRONG_PASSWORD = "Wr0ng-S3cr3t-XYZ";
const ADMIN_TOKEN = "T0ken-S3cr3t-XYZ-0123456789abcdef";
const SECRET = /S3cr3t/;

let certs: TestCertificates;
let source: LocalCluster;
let target: LocalCluster;
const pools = new Map<string, pg.Pool>();
const children: ChildProcess[] = [];

interface Pair {
  name: string;
  source: pg.Pool;
  target: pg.Pool;
}

/** The superuser through the unix socket (trusted): the test's own set-up and checks. */
function adminPool(cluster: LocalCluster, database: string): pg.Pool {
  const key = `${cluster.port}/${database}`;
  const known = pools.get(key);
  if (known) return known;
  const pool = new pg.Pool({ host: cluster.dir, port: cluster.port, user: "postgres", database, max: 3 });
  pools.set(key, pool);
  return pool;
}

/** A TCP URL as pgferry gets it: TLS verified against the test CA, the server's name checked. */
function tlsUrl(cluster: LocalCluster, database: string, user: string, password: string, options: { host?: string; ca?: string; sslmode?: string } = {}): string {
  const params = new URLSearchParams({ sslmode: options.sslmode ?? "verify-full", sslrootcert: options.ca ?? certs.caFile });
  return `postgres://${user}:${encodeURIComponent(password)}@${options.host ?? "127.0.0.1"}:${cluster.port}/${database}?${params.toString()}`;
}

/** A database of the same name on both clusters, with pgvector and the fixture (source seeded). */
async function createPair(name: string, rows: number): Promise<Pair> {
  await Promise.all([source, target].map((c) => adminPool(c, "postgres").query(`CREATE DATABASE ${name}`)));
  const pair = { name, source: adminPool(source, name), target: adminPool(target, name) };
  await Promise.all([pair.source.query("CREATE EXTENSION vector"), pair.target.query("CREATE EXTENSION vector")]);
  await createFixture(pair.source, pair.target);
  await seed(pair.source, rows);
  return pair;
}

/** Runs docs/privileges.sql with psql, as operators do. */
async function applyPrivileges(cluster: LocalCluster, database: string, variables: Record<string, string>): Promise<void> {
  const args = ["-X", "-q", "-h", cluster.dir, "-p", String(cluster.port), "-U", "postgres", "-d", database];
  for (const [key, value] of Object.entries(variables)) args.push("-v", `${key}=${value}`);
  try {
    await execFileAsync(join(defaultPgBin(), "psql"), [...args, "-f", PRIVILEGES_SQL], { timeout: 30_000 });
  } catch (error) {
    throw new Error(`psql -f docs/privileges.sql failed: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`, { cause: error });
  }
}

async function grantPipelineRoles(database: string, publication: string, tables: { from: string; to: string }[] = mappings()): Promise<void> {
  await applyPrivileges(source, database, { side: "source", tables: tables.map((t) => t.from).join(", "), publication, password: SOURCE_PASSWORD });
  await applyPrivileges(target, database, { side: "target", tables: tables.map((t) => t.to).join(", "), password: TARGET_PASSWORD });
}

const roleUrls = (database: string) => ({
  sourceUrl: tlsUrl(source, database, "pgferry_source", SOURCE_PASSWORD),
  targetUrl: tlsUrl(target, database, "pgferry_target", TARGET_PASSWORD),
});

async function targetEqualsSource(pair: Pair, timeoutMs = 30_000): Promise<void> {
  const difference = await waitFor(() => compareTables(pair.source, pair.target, pairs()), {
    description: "target == source",
    until: (d) => d === null,
    timeoutMs,
    intervalMs: 200,
  });
  expect(difference).toBeNull();
}

const logText = (running: RunningPipeline) => running.logs.join("\n");

beforeAll(async () => {
  // Fails with what to install when openssl is missing.
  certs = await createTestCertificates({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  const hbaFile = join(certs.dir, "pg_hba.conf");
  await writeFile(
    hbaFile,
    [
      "# pgferry security test: the unix socket for the test's own set-up; TCP only over TLS, with SCRAM passwords",
      "local    all  all                 trust",
      "hostssl  all  all  127.0.0.0/8    scram-sha-256",
      "host     all  all  127.0.0.0/8    reject",
      "",
    ].join("\n"),
  );
  const owner = postgresOwner();
  if (owner) await chown(hbaFile, owner.uid, owner.gid);
  const settings = {
    ssl: "on",
    ssl_cert_file: `'${certs.serverCertFile}'`,
    ssl_key_file: `'${certs.serverKeyFile}'`,
    hba_file: `'${hbaFile}'`,
    password_encryption: "'scram-sha-256'",
    // A second loopback address the certificate does not name, to see host name verification fail.
    listen_addresses: "'127.0.0.1,127.0.0.2'",
  };
  [source, target] = await Promise.all([
    LocalCluster.start({ name: "security-source", fast: true, settings }),
    LocalCluster.start({ name: "security-target", fast: true, settings }),
  ]);
  await Promise.all([source, target].map((c) => adminPool(c, "postgres").query(`ALTER ROLE postgres PASSWORD '${ADMIN_PASSWORD}'`)));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await Promise.all([...pools.values()].map((p) => p.end().catch(() => undefined)));
  await Promise.all([source?.destroy(), target?.destroy()]);
  await certs?.destroy();
});

describe("TLS with sslmode=verify-full", () => {
  let pair: Pair;
  const superuserUrl = (cluster: LocalCluster, options: { host?: string; ca?: string; sslmode?: string } = {}) =>
    tlsUrl(cluster, "tls", "postgres", ADMIN_PASSWORD, options);

  beforeAll(async () => {
    pair = await createPair("tls", 200);
  });

  it("the server refuses plain connections; node-pg verifies CA and host name for pools and replication connections", async () => {
    const plain = new pg.Client({ connectionString: superuserUrl(source, { sslmode: "disable" }) });
    await expect(plain.connect()).rejects.toThrow(/pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "postgres", database "tls", no encryption/);

    const failures: [string, RegExp][] = [
      [superuserUrl(source, { ca: certs.otherCaFile }), /unable to verify the first certificate/],
      [superuserUrl(source, { host: "127.0.0.2" }), /Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.2 is not in the cert's list: 127\.0\.0\.1/],
    ];
    for (const [url, problem] of failures) {
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      await expect(pool.query("SELECT 1")).rejects.toThrow(problem);
      await pool.end();
      await expect(ReplicationConnection.connect(endpoint("source", url), "pgferry-tls-probe")).rejects.toThrow(problem);
    }

    // The certificate names both 127.0.0.1 and localhost.
    for (const host of ["127.0.0.1", "localhost"]) {
      const url = superuserUrl(source, { host });
      const replication = await ReplicationConnection.connect(endpoint("source", url), "pgferry-tls-probe");
      const pool = new pg.Pool({ connectionString: url, max: 1, application_name: "pgferry-tls-probe" });
      try {
        await pool.query("SELECT 1");
        const { rows } = await pair.source.query<{ backend_type: string; ssl: boolean; version: string }>(
          `SELECT a.backend_type, s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
           WHERE a.application_name = 'pgferry-tls-probe' ORDER BY a.backend_type`,
        );
        expect(rows.map((r) => `${r.backend_type} ssl=${r.ssl}`)).toEqual(["client backend ssl=true", "walsender ssl=true"]);
        for (const row of rows) expect(row.version).toMatch(/^TLSv1\.[23]$/);
      } finally {
        await replication.close();
        await pool.end();
      }
    }
  });

  it("copies and streams with target == source, every pgferry session on TLS", async () => {
    const running = startPipeline(testConfig({ sourceUrl: superuserUrl(source), targetUrl: superuserUrl(target), tables: mappings(), slot: "pgferry_tls" }));
    try {
      await streaming(running);
      await runWriteLoad(pair.source, { transactions: 150 });
      await targetEqualsSource(pair);
      const walsender = await pair.source.query(
        "SELECT s.ssl FROM pg_replication_slots r JOIN pg_stat_ssl s ON s.pid = r.active_pid WHERE r.slot_name = 'pgferry_tls'",
      );
      expect(walsender.rows).toEqual([{ ssl: true }]);
      const sessions = await pair.target.query<{ application_name: string; ssl: boolean }>(
        `SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = 'tls' AND a.application_name LIKE 'pgferry%'`,
      );
      expect(sessions.rows.map((r) => r.application_name)).toContain("pgferry-apply");
      expect(sessions.rows.every((r) => r.ssl)).toBe(true);
    } finally {
      await running.stop();
    }
    expect(running.failure).toBeUndefined();
    expect(logText(running)).not.toMatch(SECRET);
  });

  it("stops at once, naming the problem, when the server's certificate does not verify against sslrootcert", async () => {
    const running = startPipeline(
      testConfig({ sourceUrl: superuserUrl(source), targetUrl: superuserUrl(target, { ca: certs.otherCaFile }), tables: mappings(), slot: "pgferry_tls" }),
    );
    const error = await running.done.then(() => null, (e: unknown) => e);
    // A certificate problem is configuration, not an outage: retrying would fail the same way.
    expect(error).toBeInstanceOf(PgferryError);
    expect((error as PgferryError).kind).toBe("preflight");
    expect((error as Error).message).toMatch(/^cannot reach the target database postgres:\/\/postgres@127\.0\.0\.1:\d+\/tls: unable to verify the first certificate$/);
    expect(running.phases).toContain("failed");
    expect(running.phases).not.toContain("preflight");
    expect(String((error as Error).message)).not.toMatch(SECRET);
  });
});

describe("least privilege (docs/privileges.sql)", () => {
  let pair: Pair;

  beforeAll(async () => {
    pair = await createPair("lp", 200);
    await grantPipelineRoles("lp", "pgferry_lp");
  });

  it("runs snapshot, streaming and a restart as pgferry_source / pgferry_target", async () => {
    const roles = await Promise.all([
      pair.source.query<Record<string, boolean>>("SELECT rolsuper, rolreplication, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = 'pgferry_source'"),
      pair.target.query<Record<string, boolean>>("SELECT rolsuper, rolreplication, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = 'pgferry_target'"),
    ]);
    expect(roles.map((r) => r.rows[0])).toEqual([
      { rolsuper: false, rolreplication: true, rolcreatedb: false, rolcreaterole: false, rolbypassrls: false },
      { rolsuper: false, rolreplication: false, rolcreatedb: false, rolcreaterole: false, rolbypassrls: false },
    ]);
    const config = testConfig({ ...roleUrls("lp"), tables: mappings(), slot: "pgferry_lp" });

    const first = startPipeline(config);
    try {
      await streaming(first);
      await runWriteLoad(pair.source, { transactions: 200 });
      // A replicated TRUNCATE of a partitioned table: TRUNCATE on the target's root is enough.
      await pair.source.query("TRUNCATE events");
      await runWriteLoad(pair.source, { transactions: 50, seedOffset: 5_000 });
      await targetEqualsSource(pair);
      expect(Number((await pair.target.query<{ n: string }>("SELECT count(*) AS n FROM app.events")).rows[0]?.n)).toBeLessThan(200);
    } finally {
      await first.stop();
    }
    expect(first.failure).toBeUndefined();
    // The owner's publication is used as is: pgferry_source could not alter it.
    const publication = first.logs.map((l) => JSON.parse(l) as { msg: string; result?: string }).find((l) => l.msg === "publication ready");
    expect(publication?.result).toBe("unchanged");

    await runWriteLoad(pair.source, { transactions: 100, seedOffset: 10_000 });
    const second = startPipeline(config);
    try {
      await streaming(second);
      await targetEqualsSource(pair);
    } finally {
      await second.stop();
    }
    expect(second.failure).toBeUndefined();

    // Its state lives in the schema it was given, without CREATE on the database.
    const state = await pair.target.query(
      `SELECT nspowner::regrole::text AS owner, has_database_privilege('pgferry_target', current_database(), 'CREATE') AS can_create
       FROM pg_namespace WHERE nspname = '_pgferry'`,
    );
    expect(state.rows).toEqual([{ owner: "pgferry_target", can_create: false }]);
    expect(logText(first) + logText(second)).not.toMatch(SECRET);
  });

  it("preflight names each missing privilege, and re-running docs/privileges.sql restores them", async () => {
    await pair.source.query("REVOKE SELECT ON public.audit, public.events_2026_11 FROM pgferry_source; ALTER ROLE pgferry_source NOREPLICATION");
    await pair.target.query("REVOKE INSERT ON app.items FROM pgferry_target; REVOKE SET ON PARAMETER session_replication_role FROM pgferry_target");
    try {
      const running = startPipeline(testConfig({ ...roleUrls("lp"), tables: mappings(), slot: "pgferry_lp" }));
      const error = await running.done.then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(PreflightError);
      expect([...(error as PreflightError).problems].sort()).toEqual([
        "source: the role has neither REPLICATION nor SUPERUSER (ALTER ROLE ... REPLICATION)",
        "source: the role lacks SELECT on public.audit (GRANT SELECT ON public.audit TO pgferry_source; see docs/privileges.sql)",
        "source: the role lacks SELECT on public.events_2026_11, a partition of public.events (the snapshot reads partitions directly)",
        "target: the role lacks INSERT on app.items (GRANT INSERT ON app.items TO pgferry_target; see docs/privileges.sql)",
        "target: the role may not SET session_replication_role (GRANT SET ON PARAMETER session_replication_role TO <role>)",
      ]);
      expect(running.phases).toContain("failed");
    } finally {
      await grantPipelineRoles("lp", "pgferry_lp");
    }
    const restored = await Promise.all([
      pair.source.query<{ ok: boolean }>(
        `SELECT has_table_privilege('pgferry_source', 'public.audit', 'SELECT') AND has_table_privilege('pgferry_source', 'public.events_2026_11', 'SELECT')
                AND (SELECT rolreplication FROM pg_roles WHERE rolname = 'pgferry_source') AS ok`,
      ),
      pair.target.query<{ ok: boolean }>(
        `SELECT has_table_privilege('pgferry_target', 'app.items', 'INSERT')
                AND has_parameter_privilege('pgferry_target', 'session_replication_role', 'SET') AS ok`,
      ),
    ]);
    expect(restored.map((r) => r.rows[0])).toEqual([{ ok: true }, { ok: true }]);
    // A forgotten variable is an error, not a half-applied setup.
    await expect(applyPrivileges(source, "lp", { tables: "public.accounts" })).rejects.toThrow(/pass -v side=source or -v side=target/);
    await expect(applyPrivileges(source, "lp", { side: "source" })).rejects.toThrow(/pass -v tables=/);
  });
});

describe("no secrets or row values in the logs", () => {
  let pair: Pair;

  beforeAll(async () => {
    pair = await createPair("logs", 100);
    await grantPipelineRoles("logs", "pgferry_logs");
  });

  interface RunOptions {
    slot?: string;
    tables?: { from: string; to: string }[];
    /** apply.onError: stop, so a rejected change ends the run whatever the retry policy. */
    stopOnError?: boolean;
  }

  async function cliRun(env: { sourceUrl: string; targetUrl: string }, options: RunOptions = {}): Promise<{ run: ChildRun; control: string }> {
    const port = await freePort();
    const extra = `control:\n  listen: 127.0.0.1:${port}\n  adminToken: \${ADMIN_TOKEN}\n`;
    let yaml = configYaml(options.tables ?? mappings(), extra, options.slot ?? "pgferry_logs");
    if (options.stopOnError) {
      yaml = yaml.replace("\napply:\n", "\napply:\n  onError: stop\n");
      expect(yaml).toContain("  onError: stop\n");
    }
    const file = await writeConfigFile(yaml);
    const run = runCli(["run", "--config", file], { SOURCE_URL: env.sourceUrl, TARGET_URL: env.targetUrl, ADMIN_TOKEN });
    children.push(run.child);
    return { run, control: `http://127.0.0.1:${port}` };
  }

  const text = (run: ChildRun) => run.output.join("");

  async function exitWithin(run: ChildRun, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        run.child.kill("SIGKILL");
        reject(new Error(`pgferry did not exit within ${ms} ms; its output:\n${text(run).slice(-3000)}`));
      }, ms);
    });
    try {
      return await Promise.race([run.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  it("never prints a password or the admin token: running, target unreachable, wrong password", async () => {
    const urls = roleUrls("logs");

    // Running normally, with the control API used with the right and a wrong token.
    const healthy = await cliRun(urls);
    await targetEqualsSource(pair, 45_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${text(healthy.run).slice(-3000)}`);
    });
    await runWriteLoad(pair.source, { transactions: 50 });
    await targetEqualsSource(pair);
    const answers: string[] = [];
    for (const [method, path, token] of [
      ["GET", "/", undefined],
      ["GET", "/v1/status", undefined],
      ["GET", "/metrics", undefined],
      ["POST", "/v1/tables/public.accounts/resync", `wrong-${ADMIN_TOKEN}`],
      ["POST", "/v1/tables/public.nothing/resync", ADMIN_TOKEN],
    ] as const) {
      const response = await fetch(`${healthy.control}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
      answers.push(`${method} ${path} ${response.status} ${await response.text()}`);
    }
    expect(answers[3]).toMatch(/^POST \/v1\/tables\/public\.accounts\/resync 401 /);
    expect(answers.join("\n")).not.toMatch(SECRET);
    healthy.run.child.kill("SIGTERM");
    expect(await exitWithin(healthy.run, 30_000)).toEqual({ code: 0, signal: null });
    expect(text(healthy.run)).toContain('"msg":"streaming"');
    expect(text(healthy.run)).not.toMatch(SECRET);

    // Target unreachable (nothing listens on the port): connection errors logged while retrying.
    const closedPort = await freePort();
    const unreachable = await cliRun({ ...urls, targetUrl: urls.targetUrl.replace(`:${target.port}/`, `:${closedPort}/`) });
    await waitFor(() => text(unreachable.run).split("transient failure").length - 1, {
      description: "two logged retries of the unreachable target",
      until: (n) => n >= 2,
      timeoutMs: 20_000,
    });
    unreachable.run.child.kill("SIGTERM");
    expect(await exitWithin(unreachable.run, 30_000)).toEqual({ code: 0, signal: null });
    expect(text(unreachable.run)).toMatch(new RegExp(`cannot reach the target database postgres://pgferry_target@127\\.0\\.0\\.1:${closedPort}/logs: `));
    expect(text(unreachable.run)).toContain("ECONNREFUSED");
    expect(text(unreachable.run)).not.toMatch(SECRET);

    // A wrong password: authentication fails, pgferry stops (retrying would not help).
    const denied = await cliRun({ ...urls, sourceUrl: tlsUrl(source, "logs", "pgferry_source", WRONG_PASSWORD) });
    expect(await exitWithin(denied.run, 30_000)).toEqual({ code: 1, signal: null });
    expect(text(denied.run)).toMatch(/password authentication failed for user \\?"pgferry_source/);
    expect(text(denied.run)).not.toMatch(SECRET);
  });

  it("names the table, SQLSTATE and constraint of a rejected change but not its values", async () => {
    const email = "leak-Q7Z9@example.com";
    await pair.target.query("CREATE UNIQUE INDEX accounts_email_uniq ON app.accounts (email)");

    // While streaming: the apply session's upsert is rejected.
    const stream = await cliRun(roleUrls("logs"), { stopOnError: true });
    await waitFor(() => text(stream.run).includes('"msg":"streaming"'), { description: "pgferry streaming", timeoutMs: 30_000 });
    await pair.source.query("INSERT INTO accounts (id, email) VALUES (4242424201, $1), (4242424202, $1)", [email]);
    expect(await exitWithin(stream.run, 30_000)).toEqual({ code: 1, signal: null });
    const streamed = text(stream.run);
    expect(streamed).toMatch(/target rejected insert of \d+ row\(s\) into app\.accounts: SQLSTATE 23505 duplicate key value violates unique constraint \\"accounts_email_uniq\\"/);

    // During a snapshot: a new pipeline copies the same rows, and COPY is rejected.
    await applyPrivileges(source, "logs", { side: "source", tables: "public.accounts", publication: "pgferry_logs_snap" });
    const snapshot = await cliRun(roleUrls("logs"), { slot: "pgferry_logs_snap", tables: [{ from: "public.accounts", to: "app.accounts" }], stopOnError: true });
    expect(await exitWithin(snapshot.run, 30_000)).toEqual({ code: 1, signal: null });
    const copied = text(snapshot.run);
    expect(copied).toContain('"code":"23505"');
    expect(copied).toContain('"constraint":"accounts_email_uniq"');
    expect(copied).toContain('"table":"accounts"');

    for (const output of [streamed, copied]) {
      expect(output).not.toContain("leak-Q7Z9");
      expect(output).not.toContain("4242424201");
      expect(output).not.toContain("4242424202");
      expect(output).not.toMatch(SECRET);
    }
  });
});
