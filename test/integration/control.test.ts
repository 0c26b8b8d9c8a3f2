/**
 * The control API against a real pipeline: /healthz and /readyz through the phases (not ready
 * before streaming, during the snapshot or while lag is high; ready when streaming and caught up),
 * /v1/status compared with the state in the target and the slot in the source, and the resync
 * endpoints' token checks and answers (501 without an engine, a stub engine's 202/404/409).
 */
import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { ControlServer } from "../../src/control/controlServer.js";
import { PipelineMetrics } from "../../src/control/metrics.js";
import { PipelineMonitor, type PipelineStatus, type Readiness } from "../../src/control/pipelineMonitor.js";
import { ResyncRunningError, UnknownTableError, type ResyncController, type ResyncInfo } from "../../src/control/resyncController.js";
import { createLogger } from "../../src/log/logger.js";
import { createFixture, mappings, seed } from "../fixtures/appSchema.js";
import type { TestDatabases } from "../harness/databases.js";
import { useTestPair } from "../harness/testPair.js";
import { testConfig } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { ADMIN_TOKEN, request, startControlled, type ControlledPipeline } from "./controlSupport.js";

let db: TestDatabases;
let running: ControlledPipeline | undefined;
const SEEDED = 300;

const config = (readyMaxLagSeconds = 30) =>
  testConfig({
    sourceUrl: db.sourceUrl,
    targetUrl: db.targetUrl,
    tables: mappings(),
    extra: `control:\n  listen: 127.0.0.1:9187\n  adminToken: ${ADMIN_TOKEN}\n  readyMaxLagSeconds: ${readyMaxLagSeconds}\n`,
  });

/** Holds a SHARE lock on a target table until released: reads go on, the pipeline's writes to it wait. */
async function lockTargetTable(table: string): Promise<{ release(): Promise<void> }> {
  const client: pg.PoolClient = await db.target.connect();
  await client.query("BEGIN");
  await client.query(`LOCK TABLE ${table} IN SHARE MODE`);
  return {
    async release() {
      await client.query("ROLLBACK");
      client.release();
    },
  };
}

const status = async (base: string) => (await request(`${base}/v1/status`)).body as PipelineStatus;

useTestPair("control", async (created) => {
  db = created;
  await createFixture(db.source, db.target);
  await seed(db.source, SEEDED);
  await db.source.query("ANALYZE");
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe("health and readiness", () => {
  it("is alive at once, not ready before streaming or during the snapshot, ready when streaming and caught up", async () => {
    running = await startControlled(config(), { start: false });
    const { base } = running;
    expect(await request(`${base}/healthz`)).toMatchObject({ status: 200, body: { status: "alive" } });
    expect(await request(`${base}/readyz`)).toMatchObject({ status: 503, body: { ready: false, reason: "phase is starting, not streaming" } });

    // The snapshot waits on this lock (it empties and fills app.accounts), so it stays in progress.
    const lock = await lockTargetTable("app.accounts");
    try {
      running.startPipeline();
      const during = await waitFor(() => status(base), {
        description: "the snapshot in progress with the tables in the status",
        until: (s) => s.phase === "snapshot" && s.tables.length === 4 && s.tables.some((t) => t.state === "copying"),
      });
      expect(during.readiness).toMatchObject({ ready: false, reason: "phase is snapshot, not streaming" });
      expect(await request(`${base}/readyz`)).toMatchObject({ status: 503, body: { phase: "snapshot", reason: "phase is snapshot, not streaming" } });
      expect(await request(`${base}/healthz`)).toMatchObject({ status: 200 });
    } finally {
      await lock.release();
    }
    const ready = await waitFor(() => request(`${base}/readyz`), { description: "/readyz 200", until: (r) => r.status === 200 });
    expect(ready.body).toMatchObject({ ready: true, phase: "streaming", maxLagSeconds: 30 });
    expect((ready.body as Readiness).lagSeconds).toBeLessThanOrEqual(30);
  });

  it("is not ready while the target falls behind by more than readyMaxLagSeconds, and ready again once it catches up", async () => {
    running = await startControlled(config(1));
    const { base } = running;
    await waitFor(() => request(`${base}/readyz`), { description: "/readyz 200", until: (r) => r.status === 200 });
    const lock = await lockTargetTable("app.accounts");
    try {
      await db.source.query("INSERT INTO accounts (id, email) VALUES (1, 'lagging@example.com')");
      const behind = await waitFor(() => request(`${base}/readyz`), { description: "/readyz 503 on lag", until: (r) => r.status === 503, timeoutMs: 15_000 });
      expect(behind.body).toMatchObject({ ready: false, phase: "streaming" });
      expect((behind.body as Readiness).reason).toMatch(/^replication lag \d+\.\d s is above control\.readyMaxLagSeconds \(1 s\)$/);
      const s = await status(base);
      expect(s.phase).toBe("streaming");
      expect(s.lag.bytes).toBeGreaterThan(0);
      expect(s.lag.seconds).toBeGreaterThan(1);
    } finally {
      await lock.release();
    }
    const caughtUp = await waitFor(() => request(`${base}/readyz`), { description: "/readyz 200 after catching up", until: (r) => r.status === 200, timeoutMs: 15_000 });
    expect(caughtUp.body).toMatchObject({ ready: true });
    const { rows } = await db.target.query("SELECT email FROM app.accounts WHERE id = 1");
    expect(rows).toEqual([{ email: "lagging@example.com" }]);
  });
});

describe("GET /v1/status", () => {
  it("reports the phase, checkpoint, slot and per-table state as the target and source hold them", async () => {
    running = await startControlled(config());
    const { base } = running;
    await waitFor(() => request(`${base}/readyz`), { description: "/readyz 200", until: (r) => r.status === 200 });
    await db.source.query("INSERT INTO accounts (id, email) VALUES (2, 'status@example.com')");
    await waitFor(async () => (await db.target.query("SELECT 1 FROM app.accounts WHERE id = 2")).rowCount, { description: "insert applied", until: (n) => n === 1 });

    const { rows: stored } = await db.target.query<{ commit_lsn: string; end_lsn: string; commit_time: Date }>(
      "SELECT commit_lsn::text, end_lsn::text, commit_time FROM _pgferry.pipelines",
    );
    const s = await waitFor(() => status(base), {
      description: "the status to show the stored checkpoint",
      until: (x) => x.checkpoint?.endLsn === stored[0]?.end_lsn,
    });
    expect(s.pipeline).toBe(running.control.monitor.status().pipeline);
    expect(s.phase).toBe("streaming");
    expect(s.checkpoint).toEqual({ commitLsn: stored[0]!.commit_lsn, endLsn: stored[0]!.end_lsn, commitTime: stored[0]!.commit_time.toISOString() });
    expect(s.readiness.ready).toBe(true);
    expect(s.errors).toEqual({ total: 0, byKind: {}, last: null });

    const { rows: tables } = await db.target.query<{ source_table: string; state: string; rows_copied: string; rows_estimated: string; started_at: Date; finished_at: Date }>(
      "SELECT source_table, state, rows_copied::text, rows_estimated::text, started_at, finished_at FROM _pgferry.tables ORDER BY source_table",
    );
    expect(s.tables.map((t) => ({ ...t, syncLsn: undefined }))).toEqual(
      tables.map((t) => ({
        table: t.source_table,
        state: t.state,
        rowsCopied: Number(t.rows_copied),
        rowsEstimated: Number(t.rows_estimated),
        percent: 100,
        syncLsn: undefined,
        startedAt: t.started_at.toISOString(),
        finishedAt: t.finished_at.toISOString(),
        error: null,
      })),
    );
    expect(s.tables.find((t) => t.table === "public.accounts")).toMatchObject({ state: "ready", rowsCopied: SEEDED, rowsEstimated: SEEDED });

    // The slot as the source reports it (restart_lsn moves rarely; compare once both agree).
    const slot = await waitFor(
      async () => {
        const [{ rows }, current] = await Promise.all([
          db.source.query<{ slot_name: string; restart_lsn: string; active: boolean }>("SELECT slot_name, restart_lsn::text, active FROM pg_replication_slots WHERE slot_name = $1", [s.slot.name]),
          status(base),
        ]);
        return { row: rows[0], reported: current.slot };
      },
      { description: "the slot in the status to match pg_replication_slots", until: (x) => x.row?.restart_lsn === x.reported.restartLsn && x.reported.active === x.row?.active },
    );
    expect(slot.reported).toMatchObject({ name: running.control.monitor.status().pipeline, exists: true, active: true });
    expect(slot.reported.retainedWalBytes).toBeGreaterThan(0);
  });
});

describe("resync endpoints", () => {
  it("require the admin token and answer 501 without a resync engine", async () => {
    running = await startControlled(config(), { start: false });
    const { base } = running;
    const post = (headers: Record<string, string> = {}) => request(`${base}/v1/tables/public.accounts/resync`, { method: "POST", headers });
    const without = await post();
    expect(without.status).toBe(401);
    expect(without.headers.get("www-authenticate")).toBe('Bearer realm="pgferry"');
    expect((await post({ authorization: `Bearer ${ADMIN_TOKEN}x` })).status).toBe(401);
    expect((await post({ authorization: ADMIN_TOKEN })).status).toBe(401);
    const unavailable = await post({ authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(unavailable.status).toBe(501);
    expect((unavailable.body as { error: string }).error).toMatch(/resync is not available/);
    expect((await request(`${base}/v1/resyncs/abc`)).status).toBe(501);
    expect((await request(`${base}/v1/tables/public.accounts/resync`)).status).toBe(405);
    expect((await request(`${base}/v1/nothing`)).status).toBe(404);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.text()).toMatch(/^pgferry_pipeline_phase\{phase="starting"\} 1$/m);
  });

  it("route to the injected ResyncController: 202 with an id, 404 unknown table, 409 already running", async () => {
    const started: string[] = [];
    const resyncs: ResyncController = {
      start(table) {
        if (!table.startsWith("public.")) throw new UnknownTableError(table);
        if (started.includes(table)) throw new ResyncRunningError(table, `r-${started.indexOf(table)}`);
        started.push(table);
        return { id: `r-${started.length - 1}` };
      },
      get: (id): ResyncInfo | undefined => {
        const index = Number(id.slice(2));
        return started[index] ? { id, table: started[index], state: "running", chunksDone: 0 } : undefined;
      },
    };
    running = await startControlled(config(), { start: false, resyncs });
    const { base } = running;
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const first = await request(`${base}/v1/tables/public.accounts/resync`, { method: "POST", headers: auth });
    expect(first).toMatchObject({ status: 202, body: { id: "r-0", table: "public.accounts", status: "/v1/resyncs/r-0" } });
    expect(first.headers.get("location")).toBe("/v1/resyncs/r-0");
    expect(started).toEqual(["public.accounts"]);
    expect(await request(`${base}/v1/tables/public.accounts/resync`, { method: "POST", headers: auth })).toMatchObject({ status: 409, body: { id: "r-0" } });
    expect(await request(`${base}/v1/tables/${encodeURIComponent("other.t")}/resync`, { method: "POST", headers: auth })).toMatchObject({ status: 404, body: { table: "other.t" } });
    expect(await request(`${base}/v1/resyncs/r-0`)).toMatchObject({ status: 200, body: { id: "r-0", table: "public.accounts", state: "running" } });
    expect((await request(`${base}/v1/resyncs/r-9`)).status).toBe(404);
    expect(started).toEqual(["public.accounts"]);
  });
});

describe("starting the server", () => {
  const parts = () => {
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30 });
    return {
      log: createLogger({ level: "silent", format: "json" }),
      status: () => monitor.status(),
      readiness: () => monitor.readiness(),
      registry: new PipelineMetrics({ monitor, processMetrics: false }).registry,
    };
  };

  it("refuses a non-loopback address without an admin token, and listens on one with a token", async () => {
    const open = new ControlServer({ ...parts(), listen: { host: "0.0.0.0", port: 0 }, adminToken: undefined });
    await expect(open.start()).rejects.toThrow(/^control\.listen 0\.0\.0\.0:0 is not a loopback address and control\.adminToken is not set$/);
    await expect(open.start()).rejects.toMatchObject({ kind: "config" });
    const guarded = new ControlServer({ ...parts(), listen: { host: "0.0.0.0", port: 0 }, adminToken: ADMIN_TOKEN });
    const address = await guarded.start();
    try {
      expect((await request(`http://127.0.0.1:${address.port}/healthz`)).status).toBe(200);
    } finally {
      await guarded.stop();
    }
    // The config refuses the same before anything starts.
    expect(() => parseConfig("source: { url: postgres://a/b }\ntarget: { url: postgres://a/c }\ncontrol: { listen: '0.0.0.0:9187' }\ntables: []\n", "t.yaml", {})).toThrow(
      /control\.adminToken: required when control\.listen is not a loopback address/,
    );
  });

  it("refuses mutating endpoints (403) when no admin token is configured, even on loopback", async () => {
    const server = new ControlServer({ ...parts(), listen: { host: "127.0.0.1", port: 0 }, adminToken: undefined });
    const address = await server.start();
    try {
      const answer = await request(`http://127.0.0.1:${address.port}/v1/tables/public.a/resync`, { method: "POST", headers: { authorization: "Bearer anything" } });
      expect(answer).toMatchObject({ status: 403, body: { error: "mutating endpoints are disabled: control.adminToken is not set" } });
    } finally {
      await server.stop();
    }
  });

  it("fails with a config error when the port is taken", async () => {
    const first = new ControlServer({ ...parts(), listen: { host: "127.0.0.1", port: 0 }, adminToken: undefined });
    const { port } = await first.start();
    try {
      const second = new ControlServer({ ...parts(), listen: { host: "127.0.0.1", port }, adminToken: undefined });
      await expect(second.start()).rejects.toThrow(`control server cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
      await expect(second.start()).rejects.toMatchObject({ kind: "config" });
    } finally {
      await first.stop();
    }
  });
});
