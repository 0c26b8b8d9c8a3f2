/**
 * Faults on the network and on the source, on a pair of servers of this file's own: a TCP proxy
 * resets and stalls pgferry's connections at random moments during the snapshot, streaming and a
 * resync; an invalidated slot (max_slot_wal_keep_size exceeded) is reported clearly and recovered
 * as documented. Every scenario ends with target == source.
 */
import pg from "pg";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { PreflightError } from "../../src/pipeline/preflight.js";
import { ResyncEngine } from "../../src/pipeline/resync/resyncEngine.js";
import { postgresStores } from "../../src/state/postgresStores.js";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { startOwnServers, type OwnServers, type TestServers } from "../harness/backend.js";
import { compareTables } from "../harness/compare.js";
import { startFaultProxy, type FaultProxy } from "../harness/faultProxy.js";
import { startPipeline, streaming, type RunningPipeline } from "../harness/pipelineRunner.js";
import { configText, runCli, writeConfigFile } from "../harness/processRunner.js";
import { seededRandom } from "../harness/random.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

let own: OwnServers;
let servers: TestServers;
let source: pg.Pool;
let target: pg.Pool;
let proxies: FaultProxy[] = [];
let running: RunningPipeline | undefined;

function viaPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

function yaml(slot: string): string {
  return configText(mappings(), { slot, chunkRows: 500, retry: { maxAttempts: 100_000, initialDelayMs: 50, maxDelayMs: 500 } });
}

const converged = () =>
  waitFor(() => compareTables(source, target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 120_000, intervalMs: 250 });

beforeAll(async () => {
  own = await startOwnServers();
  ({ servers, source, target } = own);
  await createFixture(source, target);
  await seed(source, 5000);
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
  await Promise.all(proxies.map((p) => p.close()));
  proxies = [];
});
afterAll(async () => {
  await own?.close();
});

describe("network faults", () => {
  it("survives connections reset and stalled during snapshot, streaming and a resync", async () => {
    const sourceProxy = await startFaultProxy(Number(new URL(servers.source.url()).port));
    const targetProxy = await startFaultProxy(Number(new URL(servers.target.url()).port));
    proxies = [sourceProxy, targetProxy];
    const env = { SOURCE_URL: viaPort(servers.source.url(), sourceProxy.port), TARGET_URL: viaPort(servers.target.url(), targetProxy.port) };
    const config = parseConfig(yaml("pgferry_faults"), "faults.yaml", env);
    const resyncs = new ResyncEngine({ store: postgresStores({ pool: target, schema: "_pgferry", pipeline: "pgferry_faults" }).resyncs, log: pino({ level: "silent" }), chunkRows: 300 });

    const controller = new AbortController();
    const load = runWriteLoad(source, { transactions: 1_000_000, concurrency: 2, signal: controller.signal, seedOffset: 600_000 });
    running = startPipeline(config, { resyncs });
    const next = seededRandom(Number(process.env.PGFERRY_FAULT_SEED ?? 7));
    const retries = () => running!.phases.filter((p) => p === "retrying").length;
    const faults: string[] = [];
    let mustRetry = 0;
    let resyncId: string | undefined;
    for (let fault = 0; fault < 20; fault += 1) {
      await new Promise((resolve) => setTimeout(resolve, 200 + next() * 600));
      // Each fault hits a running attempt, not one already on its way to a retry; the last six hit
      // the stream (and the resync), however long the snapshot took under the earlier ones.
      const streamingOnly = fault >= 14;
      const phase = await waitFor(() => running!.phases.at(-1), {
        description: `the pipeline ${streamingOnly ? "streaming" : "running"} again before fault ${fault + 1} (after: ${faults.join("; ")})`,
        until: (p) => p === "streaming" || (!streamingOnly && (p === "preflight" || p === "snapshot")),
        timeoutMs: 60_000,
      });
      const retriesBefore = retries();
      const pick = next();
      // The target's reset always takes the connection holding the pipeline lock, and a source reset
      // while streaming takes the replication connection: either must end the attempt in a retry.
      let retryExpected = false;
      if (pick < 0.35) {
        const n = sourceProxy.resetAll();
        faults.push(`reset source during ${phase} (${n} connections)`);
        retryExpected = phase === "streaming" && n > 0;
      } else if (pick < 0.7) {
        const n = targetProxy.resetAll();
        faults.push(`reset target during ${phase} (${n} connections)`);
        retryExpected = n > 0;
      } else {
        faults.push(`stall both for 1.5 s during ${phase}`);
        await Promise.all([sourceProxy.stallAll(1500), targetProxy.stallAll(1500)]);
      }
      if (retryExpected) {
        mustRetry += 1;
        await waitFor(retries, { description: `a retry after: ${faults.at(-1)}`, until: (n) => n > retriesBefore, timeoutMs: 30_000 });
      }
      if (!resyncId && phase === "streaming" && fault >= 8) {
        resyncId = (await resyncs.start("public.accounts").catch(() => ({ id: undefined }))).id;
      }
    }
    controller.abort();
    expect(await load).toBeGreaterThan(50);
    expect(faults).toHaveLength(20);
    await streaming(running, 60_000);
    expect(await converged()).toBeNull();
    if (resyncId) {
      const done = await waitFor(() => resyncs.get(resyncId), { description: "resync done after the faults", until: (r) => r?.state === "done", timeoutMs: 60_000 });
      expect(done?.state).toBe("done");
    }
    console.log(`faults: ${faults.join("; ")}; retries: ${retries()}`);
    const targetResets = faults.filter((f) => f.startsWith("reset target")).length;
    expect(targetResets).toBeGreaterThan(0); // 4 with the default seed
    expect(mustRetry).toBeGreaterThanOrEqual(targetResets);
    expect(retries()).toBeGreaterThanOrEqual(mustRetry);
    expect(faults.filter((f) => f.includes("during streaming")).length).toBeGreaterThanOrEqual(6);
    expect(running.phases).not.toContain("failed");
  });
});

describe("an invalidated slot", () => {
  it("is reported with the recovery, and `slot drop` + run recovers with a fresh snapshot", async () => {
    const env = { SOURCE_URL: servers.source.url(), TARGET_URL: servers.target.url() };
    const config = parseConfig(yaml("pgferry_lost"), "lost.yaml", env);
    running = startPipeline(config);
    await streaming(running);
    await running.stop();
    running = undefined;

    await source.query("ALTER SYSTEM SET max_slot_wal_keep_size = '32MB'");
    await source.query("SELECT pg_reload_conf()");
    try {
      await source.query("CREATE TABLE IF NOT EXISTS filler (x text)");
      for (let i = 0; i < 3; i += 1) {
        await source.query("INSERT INTO filler SELECT repeat(md5(g::text), 20) FROM generate_series(1, 60000) g");
        await source.query("SELECT pg_switch_wal()");
        await source.query("CHECKPOINT");
      }
      await waitFor(async () => (await source.query<{ s: string }>("SELECT wal_status AS s FROM pg_replication_slots WHERE slot_name = 'pgferry_lost'")).rows[0]?.s, {
        description: "the slot invalidated",
        until: (s) => s === "lost",
        timeoutMs: 30_000,
      });
    } finally {
      await source.query("ALTER SYSTEM RESET max_slot_wal_keep_size");
      await source.query("SELECT pg_reload_conf()");
    }
    await source.query("UPDATE accounts SET email = 'after-invalidation' WHERE id = (SELECT min(id) FROM accounts)");

    running = startPipeline(config);
    const error = await running.done.then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(PreflightError);
    expect((error as PreflightError).problems).toEqual([
      "source.slot: replication slot pgferry_lost was invalidated: the source removed WAL it still needed (max_slot_wal_keep_size), so changes since the last checkpoint are gone; recover with `pgferry slot drop` and a new `pgferry run` (a fresh snapshot)",
    ]);
    running = undefined;

    const file = await writeConfigFile(yaml("pgferry_lost"));
    const drop = runCli(["slot", "drop", "--config", file], env);
    expect(await drop.exited).toEqual({ code: 0, signal: null });
    expect(drop.output.join("")).toContain("dropped replication slot pgferry_lost");
    running = startPipeline(config);
    await streaming(running);
    expect(running.phases).toContain("snapshot");
    expect(await converged()).toBeNull();
  });
});
