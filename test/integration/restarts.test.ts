/**
 * Transient failures are survived: the replication connection dropped by the server, the source
 * restarted (fast and immediate) and the target restarted, each while pgferry streams; and target
 * crashes under load lose no change the source was told is applied (the apply session commits
 * asynchronously). The file runs its own pair of servers, since restarting the shared ones would
 * disturb other test files.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { startOwnServers, type OwnServers, type TestServers } from "../harness/backend.js";
import { compareTables } from "../harness/compare.js";
import { startPipeline, testConfig, type RunningPipeline } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

let own: OwnServers;
let servers: TestServers;
let source: pg.Pool;
let target: pg.Pool;
let running: RunningPipeline | undefined;

beforeAll(async () => {
  own = await startOwnServers();
  ({ servers, source, target } = own);
  await createFixture(source, target);
  await seed(source, 1500);
});

afterAll(async () => {
  await running?.stop();
  await own?.close();
});

const converged = () =>
  waitFor(() => compareTables(source, target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 30_000, intervalMs: 250 });

async function streaming(): Promise<void> {
  await waitFor(
    async () => (await source.query("SELECT 1 FROM pg_stat_replication WHERE application_name = 'pgferry-stream' AND state = 'streaming'")).rowCount,
    { description: "pgferry streaming from the source", until: (n) => n === 1, timeoutMs: 60_000 },
  );
}

describe("transient failures while streaming", () => {
  it("survives a dropped replication connection, source restarts and a target restart with target == source", async () => {
    running = startPipeline(testConfig({ sourceUrl: servers.source.url(), targetUrl: servers.target.url(), tables: mappings() }));
    await streaming();
    expect(await converged()).toBeNull();

    await runWriteLoad(source, { transactions: 150, seedOffset: 10_000 });
    await source.query("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'pgferry-stream'");
    await runWriteLoad(source, { transactions: 150, seedOffset: 20_000 });
    await streaming();
    expect(await converged()).toBeNull();

    for (const mode of ["fast", "immediate"] as const) {
      await runWriteLoad(source, { transactions: 100, seedOffset: mode === "fast" ? 30_000 : 40_000 });
      await servers.source.restart(mode);
      await runWriteLoad(source, { transactions: 100, seedOffset: mode === "fast" ? 50_000 : 60_000 });
      await streaming();
      expect(await converged()).toBeNull();
    }

    await runWriteLoad(source, { transactions: 100, seedOffset: 70_000 });
    await servers.target.restart("immediate");
    await runWriteLoad(source, { transactions: 100, seedOffset: 80_000 });
    expect(await converged()).toBeNull();

    const retries = running.phases.filter((p) => p === "retrying").length;
    expect(retries).toBeGreaterThanOrEqual(4);
    expect(running.phases).not.toContain("failed");
    // Each restart resumed from the checkpoint: no second snapshot.
    expect(running.phases.filter((p) => p === "snapshot")).toHaveLength(1);
  });

  it("loses nothing to target crashes: an asynchronous commit is acknowledged only once flushed", async () => {
    running ??= startPipeline(testConfig({ sourceUrl: servers.source.url(), targetUrl: servers.target.url(), tables: mappings() }));
    expect(running.config.apply.synchronousCommit).toBe("off"); // the default
    await streaming();
    const slot = running.config.source.slot;
    const checkpointEnd = async () =>
      (await target.query<{ end: string }>("SELECT (end_lsn - '0/0')::text AS end FROM _pgferry.pipelines")).rows[0]?.end;
    // The target's WAL writer writes a partly filled page (the last commits) only every 2 s: a crash
    // in between loses them, and with them the checkpoint, so the source must not have been told.
    await target.query("ALTER SYSTEM SET wal_writer_delay = '2s'");
    await target.query("SELECT pg_reload_conf()");
    try {
      for (let crash = 0; crash < 3; crash += 1) {
        await runWriteLoad(source, { transactions: 60, seedOffset: 100_000 + crash * 10_000 });
        const end = (await source.query<{ lsn: string }>("SELECT pg_current_wal_insert_lsn()::text AS lsn")).rows[0]!.lsn;
        // The moment the source is told the burst is applied, the target crashes.
        await waitFor(
          async () => (await source.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn >= $2::pg_lsn", [slot, end])).rowCount,
          { description: `the slot's confirmed position to pass ${end}`, until: (n) => n === 1, timeoutMs: 60_000, intervalMs: 5 },
        );
        const before = await checkpointEnd();
        await servers.target.restart("immediate");
        // Nothing was acknowledged that the crash could take: the target's checkpoint did not go back.
        expect(await waitFor(checkpointEnd, { description: "the target's checkpoint after its restart", until: (lsn) => lsn !== undefined })).toBe(before);
      }
      expect(await converged()).toBeNull();
    } finally {
      await target.query("ALTER SYSTEM RESET wal_writer_delay");
      await target.query("SELECT pg_reload_conf()");
    }
    expect(running.phases).not.toContain("failed");
  });
});
