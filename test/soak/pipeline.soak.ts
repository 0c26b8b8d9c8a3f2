/**
 * Soak: pgferry as a real daemon for PGFERRY_SOAK_MINUTES (default 10) under steady writes, with
 * SIGKILLs and restarts, connection resets and stalls (a TCP proxy in front of both databases) and
 * periodic resyncs through the control API. At the end: target == source row by row, `pgferry
 * verify` exits 0, and a report of what it survived. Run with `npm run soak`.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../tools/embedded/localCluster.js";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { startOwnServers, type OwnServers, type TestServers } from "../harness/backend.js";
import { compareTables } from "../harness/compare.js";
import { startFaultProxy, type FaultProxy } from "../harness/faultProxy.js";
import { configText, runCli, writeConfigFile, type ChildRun } from "../harness/processRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

const MINUTES = Number(process.env.PGFERRY_SOAK_MINUTES ?? 10);
const TOKEN = "soak-admin-token-0123456789abcdef";

let own: OwnServers;
let servers: TestServers;
let source: pg.Pool;
let target: pg.Pool;
const proxies: FaultProxy[] = [];

beforeAll(async () => {
  own = await startOwnServers();
  ({ servers, source, target } = own);
  await createFixture(source, target);
  await seed(source, 20_000);
});
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await own?.close();
});

describe(`soak (${MINUTES} min)`, () => {
  it("survives kills, connection faults and resyncs under load, then verifies equal", async () => {
    const viaProxy = async (url: string) => {
      const u = new URL(url);
      const proxy = await startFaultProxy(Number(u.port));
      proxies.push(proxy);
      u.port = String(proxy.port);
      return u.toString();
    };
    const env = { SOURCE_URL: await viaProxy(servers.source.url()), TARGET_URL: await viaProxy(servers.target.url()) };
    const port = await freePort();
    const file = await writeConfigFile(
      configText(mappings(), { extra: `control:\n  listen: 127.0.0.1:${port}\n  adminToken: ${TOKEN}\n`, slot: "pgferry_soak", retry: { maxAttempts: 100_000, initialDelayMs: 100, maxDelayMs: 1000 } }),
    );
    const counts: Record<string, number> = { kills: 0, resets: 0, stalls: 0, resyncs: 0, resyncRefusals: 0 };
    let daemon: ChildRun = runCli(["run", "--config", file], env);
    let peakRss = 0;
    const controller = new AbortController();
    const load = runWriteLoad(source, { transactions: Number.MAX_SAFE_INTEGER, concurrency: 2, signal: controller.signal, seedOffset: 1_000_000 });
    const deadline = Date.now() + MINUTES * 60_000;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5_000 + Math.random() * 10_000));
      peakRss = Math.max(peakRss, (() => { try { return daemon.peakRss(); } catch { return 0; } })());
      const pick = Math.random();
      if (pick < 0.25) {
        daemon.child.kill("SIGKILL");
        await daemon.exited;
        counts.kills! += 1;
        daemon = runCli(["run", "--config", file], env);
      } else if (pick < 0.5) {
        for (const proxy of proxies) proxy.resetAll();
        counts.resets! += 1;
      } else if (pick < 0.7) {
        await Promise.all(proxies.map((p) => p.stallAll(3000)));
        counts.stalls! += 1;
      } else {
        const table = ["public.accounts", "public.items", "public.events"][Math.floor(Math.random() * 3)]!;
        const response = await fetch(`http://127.0.0.1:${port}/v1/tables/${table}/resync`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } }).catch(() => null);
        if (response?.status === 202) counts.resyncs! += 1;
        else counts.resyncRefusals! += 1; // not streaming at that moment, or one already running
      }
    }
    controller.abort();
    const committed = await load;
    const difference = await waitFor(() => compareTables(source, target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 300_000, intervalMs: 1000 });
    const verify = runCli(["verify", "--config", file], env);
    const verified = await verify.exited;
    daemon.child.kill("SIGTERM");
    const stopped = await daemon.exited;
    const report = { minutes: MINUTES, committedTransactions: committed, ...counts, peakRssMiB: Math.round(peakRss / 2 ** 20), verifyExit: verified.code, cleanStop: stopped.code === 0 };
    console.log(`soak report: ${JSON.stringify(report)}\n${verify.output.join("")}`);
    expect(difference).toBeNull();
    expect(verified.code).toBe(0);
    expect(stopped).toEqual({ code: 0, signal: null });
  });
});
