/**
 * Outages never end the daemon: with the source's or the target's port closed (a fault proxy stops
 * listening, so connecting is refused as when the server is down) for many times the retry budget
 * (apply.retry.maxAttempts failed attempts), the pipeline keeps retrying with backoff, stays unready
 * (phase `retrying`, /readyz 503) and exports the errors; once the port opens again it resumes by
 * itself, and the target equals the source row by row, including what was written meanwhile.
 * A privilege missing at run time (42501) stops it instead, with the missing GRANT in the hint.
 */
import pg from "pg";
import { afterEach, describe, expect, inject, it, onTestFailed } from "vitest";
import { parseConfig, type Config } from "../../src/config/index.js";
import { ControlPlane, combineObservers } from "../../src/control/controlPlane.js";
import { PgferryError } from "../../src/errors.js";
import type { Phase } from "../../src/pipeline/pipeline.js";
import { runPipeline } from "../../src/daemon.js";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { startFaultProxy, type FaultProxy } from "../harness/faultProxy.js";
import { capturingLogger } from "../harness/pipelineRunner.js";
import { configText } from "../harness/processRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";
import { request } from "./controlSupport.js";

/** The retry budget the outage must outlast many times over (before, it ended the daemon). */
const MAX_ATTEMPTS = 2;
const RETRY = { maxAttempts: MAX_ATTEMPTS, initialDelayMs: 50, maxDelayMs: 200 };

interface Daemon {
  control: ControlPlane;
  base: string;
  phases: Phase[];
  /** The kind of every failure the pipeline reported, in order. */
  errors: string[];
  logs: string[];
  failure?: unknown;
  done: Promise<void>;
  stop(): Promise<void>;
}

let db: TestDatabases | undefined;
let proxy: FaultProxy | undefined;
let daemon: Daemon | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  await proxy?.close();
  proxy = undefined;
  await db?.drop();
  db = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** `pgferry run` in-process: the control plane (status, /readyz, metrics) and the pipeline reporting to it. */
async function startDaemon(config: Config): Promise<Daemon> {
  const { log, logs } = capturingLogger();
  const control = new ControlPlane({ config, log, pollIntervalMs: 200, listen: { host: "127.0.0.1", port: 0 } });
  const address = await control.start();
  const controller = new AbortController();
  const phases: Phase[] = [];
  const errors: string[] = [];
  const observer = combineObservers(log, [control.observer, { phase: (p) => phases.push(p), error: (kind) => errors.push(kind) }]);
  const running: Daemon = {
    control,
    base: `http://127.0.0.1:${address.port}`,
    phases,
    errors,
    logs,
    done: Promise.resolve(),
    async stop() {
      controller.abort();
      await running.done;
      await control.stop();
    },
  };
  running.done = runPipeline(config, { log, observer }, controller.signal).catch((error: unknown) => {
    running.failure = error;
  });
  onTestFailed(() => {
    console.log(`--- last pipeline log lines ---\n${logs.slice(-60).join("\n")}`);
  });
  return running;
}

function viaPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

function configFor(sourceUrl: string, targetUrl: string, slot: string): Config {
  return parseConfig(configText(mappings(), { slot, chunkRows: 500, retry: RETRY }), "outages.yaml", { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl });
}

async function fixture(label: string): Promise<TestDatabases> {
  db = await createTestDatabases(label);
  await createFixture(db.source, db.target);
  await seed(db.source, 300);
  return db;
}

const converged = (pair: TestDatabases) =>
  waitFor(() => compareTables(pair.source, pair.target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 90_000, intervalMs: 250 });

/** Waits for /readyz 200; fails at once, with its error, if the pipeline stops instead. */
async function ready(running: Daemon): Promise<void> {
  const readiness = await waitFor(async () => (running.failure !== undefined ? undefined : request(`${running.base}/readyz`)), {
    description: "/readyz 200",
    until: (r) => r === undefined || r.status === 200,
    timeoutMs: 90_000,
    intervalMs: 200,
  });
  if (readiness === undefined) throw new Error(`the pipeline stopped instead of becoming ready: ${(running.failure as Error).message}`);
}

async function errorsTotal(running: Daemon, kind: string): Promise<number> {
  const metric = running.control.metrics.registry.getSingleMetric("pgferry_errors_total");
  const values = (await metric!.get()).values;
  return values.filter((v) => v.labels.kind === kind).reduce((sum, v) => sum + v.value, 0);
}

/** Log lines the pipeline wrote about an outage, parsed. */
function outageLines(running: Daemon): { level: number; attempt: number; kind: string; msg: string; err?: { message?: string } }[] {
  return running.logs.map((l) => JSON.parse(l) as { level: number; attempt: number; kind: string; msg: string }).filter((l) => l.msg.startsWith("database unavailable"));
}

/**
 * Closes the proxy's port with the pipeline streaming, writes rows on the source meanwhile, waits for
 * far more failed attempts than the retry budget, checks the daemon is retrying and unready, then
 * opens the port again and waits for it to resume by itself with target == source.
 */
async function outlastsOutage(pair: TestDatabases, side: "source" | "target", outage: FaultProxy, running: Daemon): Promise<void> {
  await ready(running);
  expect(await converged(pair)).toBeNull();
  const before = await errorsTotal(running, "connection");

  await outage.closePort();
  // Written while pgferry cannot reach the `side` database: must all arrive after it is back.
  const committed = await runWriteLoad(pair.source, { transactions: 150, seedOffset: side === "source" ? 100_000 : 200_000 });
  expect(committed).toBeGreaterThan(100);
  const failures = await waitFor(async () => (await errorsTotal(running, "connection")) - before, {
    description: `failed attempts against the closed ${side} port, many times apply.retry.maxAttempts (${MAX_ATTEMPTS})`,
    until: (n) => n >= 5 * MAX_ATTEMPTS,
    timeoutMs: 60_000,
  });
  expect(failures).toBeGreaterThanOrEqual(5 * MAX_ATTEMPTS);

  // Still there, retrying, unready; the error exported.
  expect(running.failure).toBeUndefined();
  expect(running.phases).not.toContain("failed");
  expect(running.control.monitor.currentPhaseName).toBe("retrying");
  const readiness = await request(`${running.base}/readyz`);
  expect(readiness.status).toBe(503);
  expect(readiness.body).toMatchObject({ ready: false, phase: "retrying", reason: "phase is retrying, not streaming" });
  const status = (await request(`${running.base}/v1/status`)).body as { phase: string; errors: { last: { kind: string; message: string } | null } };
  expect(status.phase).toBe("retrying");
  expect(status.errors.last?.kind).toBe("connection");
  expect(status.errors.last?.message).toContain(`cannot reach the ${side} database`);
  expect(status.errors.last?.message).toContain("ECONNREFUSED");
  const metricsText = (await request(`${running.base}/metrics`)).body as string;
  expect(metricsText).toContain('pgferry_pipeline_phase{phase="retrying"} 1');
  expect(metricsText).toMatch(/pgferry_errors_total\{kind="connection"\} \d+/);
  // Logged at warn with the attempt number, past the retry budget, naming the refusal.
  const lines = outageLines(running);
  expect(lines.every((l) => l.level === 40 && l.kind === "connection")).toBe(true);
  expect(Math.max(...lines.map((l) => l.attempt))).toBeGreaterThan(MAX_ATTEMPTS);
  expect(lines.some((l) => l.err?.message?.includes(`cannot reach the ${side} database`))).toBe(true);
  // Nothing written during the outage has reached the target.
  expect(await compareTables(pair.source, pair.target, pairs())).not.toBeNull();

  await outage.reopenPort();
  await ready(running);
  expect(await converged(pair)).toBeNull();
  expect(running.failure).toBeUndefined();
  expect(running.phases).not.toContain("failed");
  expect(running.phases.at(-1)).toBe("streaming");
  // Resumed from the checkpoint: no second snapshot.
  expect(running.phases.filter((p) => p === "snapshot")).toHaveLength(1);
}

describe("outages", () => {
  it("the source down (port closed) far beyond the retry budget: retrying and unready meanwhile, resumes by itself", async () => {
    const pair = await fixture("outage_source");
    proxy = await startFaultProxy(Number(new URL(pair.sourceUrl).port));
    daemon = await startDaemon(configFor(viaPort(pair.sourceUrl, proxy.port), pair.targetUrl, `pgferry_${pair.name}`));
    await outlastsOutage(pair, "source", proxy, daemon);
  });

  it("the target down (port closed) far beyond the retry budget: retrying and unready meanwhile, resumes by itself", async () => {
    const pair = await fixture("outage_target");
    proxy = await startFaultProxy(Number(new URL(pair.targetUrl).port));
    daemon = await startDaemon(configFor(pair.sourceUrl, viaPort(pair.targetUrl, proxy.port), `pgferry_${pair.name}`));
    await outlastsOutage(pair, "target", proxy, daemon);
  });
});

describe("a privilege missing at run time", () => {
  it("stops the pipeline as a privilege error with the missing GRANT in its hint; after the grant it resumes", async () => {
    const pair = await fixture("privilege");
    // A least-privilege target role (as docs/privileges.sql grants it); the source stays a superuser.
    const role = `${pair.name}_w`;
    const password = "outages-test-password";
    await pair.target.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    cleanups.push(async () => {
      const admin = new pg.Client({ connectionString: inject("pgServers").targetUrl });
      await admin.connect();
      try {
        await admin.query(`REVOKE SET ON PARAMETER session_replication_role FROM ${role}`);
        await admin.query(`DROP ROLE ${role}`);
      } finally {
        await admin.end();
      }
    });
    await pair.target.query(`GRANT CONNECT ON DATABASE ${pair.name} TO ${role};
      GRANT USAGE ON SCHEMA app TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA app TO ${role};
      CREATE SCHEMA _pgferry AUTHORIZATION ${role};
      GRANT SET ON PARAMETER session_replication_role TO ${role}`);
    const targetUrl = new URL(pair.targetUrl);
    targetUrl.username = role;
    targetUrl.password = password;
    const config = configFor(pair.sourceUrl, targetUrl.toString(), `pgferry_${pair.name}`);

    daemon = await startDaemon(config);
    await ready(daemon);
    expect(await converged(pair)).toBeNull();
    // A column filled from a sequence the role may not use: the next insert into app.audit needs it.
    await pair.target.query("ALTER TABLE app.audit ADD COLUMN n bigserial");
    await pair.source.query("INSERT INTO audit (actor, action, at) VALUES ('privilege-test', 'insert', now())");

    await daemon.done;
    const failure = daemon.failure as PgferryError;
    expect(failure).toBeInstanceOf(PgferryError);
    expect(failure.kind).toBe("privilege");
    expect(failure.message).toMatch(/^pgferry's role lacks a privilege on the target database: target rejected insert of 1 row\(s\) into app\.audit: SQLSTATE 42501 permission denied for sequence audit_n_seq/);
    expect(failure.hint).toBe(
      `run on the target database: GRANT USAGE ON SEQUENCE audit_n_seq TO ${role}; docs/privileges.sql lists every privilege pgferry needs; then start pgferry again (it resumes from its checkpoint)`,
    );
    // Stopped at once (retrying would fail the same way), the error exported as kind privilege.
    expect(daemon.phases.at(-1)).toBe("failed");
    expect(daemon.phases).not.toContain("retrying");
    expect(daemon.errors).toEqual(["privilege"]);
    expect(await errorsTotal(daemon, "privilege")).toBe(1);
    expect(daemon.control.monitor.status().errors.last).toMatchObject({ kind: "privilege" });
    expect((await pair.target.query("SELECT 1 FROM app.audit WHERE actor = 'privilege-test'")).rowCount).toBe(0);
    await daemon.stop();

    // The grant from the hint, a new start: the change kept in the slot arrives.
    await pair.target.query(`GRANT USAGE ON SEQUENCE app.audit_n_seq TO ${role}`);
    daemon = await startDaemon(config);
    await waitFor(async () => (await pair.target.query("SELECT 1 FROM app.audit WHERE actor = 'privilege-test'")).rowCount, {
      description: "the refused change applied after the grant",
      until: (n) => n === 1,
      timeoutMs: 60_000,
    });
    await pair.target.query("ALTER TABLE app.audit DROP COLUMN n");
    expect(await converged(pair)).toBeNull();
    expect(daemon.failure).toBeUndefined();
  });
});
