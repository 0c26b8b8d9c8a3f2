/**
 * The replication core end to end against real PostgreSQL: consistent snapshot under concurrent
 * writes, streaming, unchanged TOAST columns, keyless tables, truncate, restart from the checkpoint.
 * Every test ends by comparing the target's rows with the source's, row by row, as text.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { startPipeline, streaming, testConfig, type RunningPipeline } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

let db: TestDatabases;
let running: RunningPipeline | undefined;

const converged = () =>
  waitFor(() => compareTables(db.source, db.target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 60_000, intervalMs: 200 });

beforeAll(async () => {
  db = await createTestDatabases("pipeline");
  await createFixture(db.source, db.target);
  await seed(db.source, 3000);
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
});
afterAll(async () => db?.drop());

describe("snapshot and streaming", () => {
  it("copies a consistent snapshot while writes continue, then streams until target == source", async () => {
    const config = testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() });
    const load = runWriteLoad(db.source, { transactions: 400, concurrency: 2 });
    running = startPipeline(config);
    const committed = await load;
    expect(committed).toBeGreaterThan(300);
    expect(await converged()).toBeNull();
    expect(running.phases).toContain("snapshot");
    expect(running.phases).toContain("streaming");
    const { rows } = await db.target.query<{ state: string; n: string }>(
      "SELECT state, count(*)::text AS n FROM _pgferry.tables GROUP BY state",
    );
    expect(rows).toEqual([{ state: "ready", n: "4" }]);
  });

  it("leaves unchanged TOASTed values (long text, 1536-d vector) intact on UPDATE", async () => {
    running = startPipeline(testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() }));
    const before = await db.target.query<{ body: string; embedding: string }>(
      "SELECT body, embedding::text FROM app.items WHERE id = md5('item7')::uuid",
    );
    expect(before.rows[0]?.body.length).toBeGreaterThan(3000);
    await db.source.query("UPDATE items SET title = 'toast-test' WHERE id = md5('item7')::uuid");
    await waitFor(async () => (await db.target.query("SELECT 1 FROM app.items WHERE title = 'toast-test'")).rowCount, { description: "update applied", until: (n) => n === 1 });
    const after = await db.target.query<{ body: string; embedding: string }>(
      "SELECT body, embedding::text FROM app.items WHERE id = md5('item7')::uuid",
    );
    expect(after.rows[0]).toEqual(before.rows[0]);
    expect(await converged()).toBeNull();
  });

  it("resumes from the checkpoint after a stop without losing or repeating changes", async () => {
    running = startPipeline(testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() }));
    await runWriteLoad(db.source, { transactions: 100, seedOffset: 100_000 });
    await running.stop();
    // Written while nothing runs: must arrive after the restart, exactly once.
    await runWriteLoad(db.source, { transactions: 150, seedOffset: 200_000 });
    running = startPipeline(testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() }));
    expect(await converged()).toBeNull();
    expect(running.phases).not.toContain("snapshot");
  });

  it("applies TRUNCATE and keeps streaming the rows written after it", async () => {
    running = startPipeline(testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() }));
    await db.source.query("BEGIN; TRUNCATE audit; INSERT INTO audit VALUES ('after', 'truncate', now()); COMMIT");
    expect(await converged()).toBeNull();
    const { rows } = await db.target.query("SELECT actor FROM app.audit");
    expect(rows).toEqual([{ actor: "after" }]);
  });
});

describe("two instances, one slot", () => {
  it("keeps the second waiting as a standby, not ready and not failing, and lets it take over when the first stops", async () => {
    const config = () => testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() });
    running = startPipeline(config());
    await streaming(running);
    const standbyConfig = config();
    standbyConfig.apply.onError = "stop"; // waiting for the lock is not an error, whatever the policy
    const standby = startPipeline(standbyConfig);
    try {
      await waitFor(() => standby.phases.at(-1), { description: "the second instance waiting", until: (p) => p === "standby" });
      await runWriteLoad(db.source, { transactions: 50, seedOffset: 300_000 });
      expect(await converged()).toBeNull();
      expect(standby.phases).toEqual(["standby"]);
      expect(standby.failure).toBeUndefined();

      await running.stop();
      running = undefined;
      await runWriteLoad(db.source, { transactions: 50, seedOffset: 400_000 });
      await streaming(standby, 30_000);
      expect(await converged()).toBeNull();
      expect(standby.phases).not.toContain("snapshot");
      expect(standby.logs.some((l) => l.includes("pipeline lock acquired; taking over"))).toBe(true);
    } finally {
      await standby.stop();
    }
  });
});
