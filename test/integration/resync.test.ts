/**
 * Per-table resync while streaming (DBLog watermarks): under concurrent writes to the resynced
 * table and to the others, drift on the target (rows changed, deleted and added there) is repaired,
 * the other tables keep streaming meanwhile, and a stop in the middle resumes after the last
 * applied chunk. Every test ends with target == source, row by row.
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ResyncEngine } from "../../src/pipeline/resync/resyncEngine.js";
import { postgresStores } from "../../src/state/postgresStores.js";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import type { TestDatabases } from "../harness/databases.js";
import { useTestPair } from "../harness/testPair.js";
import { streaming, testConfig, type RunningPipeline } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";
import { freePort } from "../../tools/embedded/localCluster.js";
import { configYaml, runCli, writeConfigFile } from "../harness/processRunner.js";

let db: TestDatabases;
let running: RunningPipeline | undefined;

const config = () => testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() });
const store = () => postgresStores({ pool: db.target, schema: "_pgferry", pipeline: config().source.slot }).resyncs;
const engine = (chunkRows: number) => new ResyncEngine({ store: store(), log: pino({ level: "silent" }), chunkRows });
const converged = () =>
  waitFor(() => compareTables(db.source, db.target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 90_000, intervalMs: 250 });

async function corruptAccounts(): Promise<void> {
  await db.target.query(`
    UPDATE app.accounts SET balance = -1, email = 'drifted' WHERE id % 97 = 0;
    DELETE FROM app.accounts WHERE id % 89 = 0;
    INSERT INTO app.accounts (id, email) SELECT 50000000 + g, 'extra' FROM generate_series(1, 25) g;
    INSERT INTO app.accounts (id, email) VALUES (0, 'below every key');`);
}

const pair = useTestPair("resync", async (created) => {
  db = created;
  await createFixture(db.source, db.target);
  await seed(db.source, 4000);
});

describe("per-table resync while streaming", () => {
  it("repairs changed, deleted and extra target rows under concurrent writes, while the other tables keep streaming", async () => {
    const resyncs = engine(200);
    running = pair.start(config(), { resyncs });
    await streaming(running);
    expect(await converged()).toBeNull();
    await corruptAccounts();
    expect(await compareTables(db.source, db.target, pairs())).not.toBeNull();

    const controller = new AbortController();
    const load = runWriteLoad(db.source, { transactions: 100_000, signal: controller.signal, seedOffset: 300_000 });
    const { id } = await resyncs.start("public.accounts");
    expect(resyncs.inProgress()).toEqual(["public.accounts"]);
    await expect(resyncs.start("public.accounts")).rejects.toThrow(`a resync of public.accounts is already running (id ${id})`);
    await expect(resyncs.start("public.nope")).rejects.toThrow("table public.nope is not replicated by this pipeline");

    // Another table's change streams through while the resync runs.
    await db.source.query("INSERT INTO events (id, at, kind) VALUES (77777777, '2026-11-02 00:00:00+00', 'during-resync')");
    await waitFor(async () => (await db.target.query("SELECT 1 FROM app.events WHERE id = 77777777")).rowCount, { description: "event streamed during the resync", until: (n) => n === 1, timeoutMs: 10_000 });
    const midway = await resyncs.get(id);
    expect(midway?.state).toBe("running");

    const done = await waitFor(() => resyncs.get(id), { description: "resync done", until: (r) => r?.state === "done", timeoutMs: 90_000, intervalMs: 100 });
    controller.abort();
    await load;
    expect(done?.chunksDone).toBeGreaterThan(10);
    expect(resyncs.inProgress()).toEqual([]);
    expect(await converged()).toBeNull();
  });

  it("counts the rows it rewrites as op resync, apart from streamed updates", async () => {
    const resyncs = engine(500);
    running = pair.start(config(), { resyncs });
    await streaming(running);
    expect(await converged()).toBeNull();
    const { rows } = await db.source.query<{ n: string }>("SELECT count(*)::text AS n FROM accounts");
    const { id } = await resyncs.start("public.accounts");
    await waitFor(() => resyncs.get(id), { description: "resync done", until: (r) => r?.state === "done", timeoutMs: 60_000, intervalMs: 100 });
    await db.source.query("UPDATE accounts SET balance = balance + 1 WHERE id = (SELECT min(id) FROM accounts)");
    await waitFor(() => running!.applied.get("public.accounts")?.update, { description: "the streamed update counted", until: (n) => n === 1 });
    // Nothing else writes to accounts here: every row was re-read once, and only the one update streamed.
    expect(running.applied.get("public.accounts")).toEqual({ resync: Number(rows[0]!.n), update: 1 });
  });

  it("resumes after a stop in the middle, from the last applied chunk", async () => {
    const first = engine(100);
    running = pair.start(config(), { resyncs: first });
    await streaming(running);
    await corruptAccounts();
    const { id } = await first.start("public.accounts");
    const partway = await waitFor(() => first.get(id), { description: "a few chunks applied", until: (r) => (r?.chunksDone ?? 0) >= 3, timeoutMs: 60_000, intervalMs: 20 });
    await running.stop();
    const stoppedAt = await first.get(id);
    expect(stoppedAt?.state).toBe("running");
    expect(stoppedAt!.chunksDone).toBeGreaterThanOrEqual(partway!.chunksDone);

    await runWriteLoad(db.source, { transactions: 100, seedOffset: 400_000 });
    const second = engine(100);
    running = pair.start(config(), { resyncs: second });
    const done = await waitFor(() => second.get(id), { description: "resumed resync done", until: (r) => r?.state === "done", timeoutMs: 90_000, intervalMs: 100 });
    expect(done!.chunksDone).toBeGreaterThan(stoppedAt!.chunksDone);
    expect(await converged()).toBeNull();
  });
});

describe("pgferry resync (CLI, through the daemon's control API)", () => {
  it("starts a resync, follows it to done with --wait, and refuses an unknown table", async () => {
    const port = await freePort();
    const token = "resync-test-token-0123456789";
    const file = await writeConfigFile(configYaml(mappings(), `control:\n  listen: 127.0.0.1:${port}\n  adminToken: ${token}\n`, `pgferry_cli_${db.name}`));
    const env = { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl };
    const daemon = runCli(["run", "--config", file], env);
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status, { description: "the daemon ready", until: (s) => s === 200, timeoutMs: 60_000, intervalMs: 200 });
      await db.target.query("DELETE FROM app.items WHERE id IN (SELECT id FROM app.items ORDER BY id LIMIT 5)");
      const resync = runCli(["resync", "public.items", "--wait", "--config", file], env);
      const exit = await resync.exited;
      const output = resync.output.join("");
      expect(output).toMatch(/resync of public\.items started: [0-9a-f-]{36}/);
      expect(output).toContain("resync of public.items done");
      expect(exit).toEqual({ code: 0, signal: null });
      expect(await compareTables(db.source, db.target, pairs())).toBeNull();

      const unknown = runCli(["resync", "public.nope", "--config", file], env);
      expect(await unknown.exited).toEqual({ code: 2, signal: null });
      expect(unknown.output.join("")).toContain("table public.nope is not replicated by this pipeline");
    } finally {
      daemon.child.kill("SIGTERM");
      await daemon.exited;
    }
  });
  it("resumes a resync after the daemon is killed (SIGKILL) in the middle, from the last applied chunk", async () => {
    const port = await freePort();
    const token = "resync-kill-token-0123456789";
    const slot = `pgferry_kill_${db.name}`;
    const file = await writeConfigFile(configYaml(mappings(), `control:\n  listen: 127.0.0.1:${port}\n  adminToken: ${token}\nresync:\n  chunkRows: 50\n`, slot));
    const env = { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl };
    const ready = () =>
      waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status, { description: "the daemon ready", until: (s) => s === 200, timeoutMs: 60_000, intervalMs: 100 });
    const resyncStore = postgresStores({ pool: db.target, schema: "_pgferry", pipeline: slot }).resyncs;
    let daemon = runCli(["run", "--config", file], env);
    try {
      await ready();
      await corruptAccounts();
      const rows = Number((await db.source.query<{ n: string }>("SELECT count(*)::text AS n FROM accounts")).rows[0]!.n);
      const response = await fetch(`http://127.0.0.1:${port}/v1/tables/public.accounts/resync`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(202);
      const { id } = (await response.json()) as { id: string };
      await waitFor(() => resyncStore.get(id), { description: "a few chunks applied", until: (r) => (r?.chunksDone ?? 0) >= 3, timeoutMs: 60_000, intervalMs: 10 });
      daemon.child.kill("SIGKILL");
      await daemon.exited;
      const killedAt = await resyncStore.get(id);
      expect(killedAt?.state).toBe("running");

      daemon = runCli(["run", "--config", file], env);
      const done = await waitFor(() => resyncStore.get(id), { description: "the resync resumed and done", until: (r) => r?.state === "done", timeoutMs: 90_000, intervalMs: 100 });
      // Resumed, not started over: the chunks done before the kill count, and more followed, with
      // no more chunks in all than one pass over the table takes (nothing writes to it meanwhile).
      console.log(`resync chunks: ${killedAt!.chunksDone} before the kill, ${done!.chunksDone} in all, for ${rows} rows`);
      expect(done!.chunksDone).toBeGreaterThan(killedAt!.chunksDone);
      expect(done!.chunksDone).toBeLessThanOrEqual(Math.ceil(rows / 50) + 1);
      expect(await converged()).toBeNull();
    } finally {
      daemon.child.kill("SIGTERM");
      await daemon.exited;
    }
  });
});
