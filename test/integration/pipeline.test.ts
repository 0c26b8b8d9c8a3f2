/**
 * The replication core end to end against real PostgreSQL: consistent snapshot under concurrent
 * writes, streaming, unchanged TOAST columns, keyless tables, truncate, restart from the checkpoint.
 * Every test ends by comparing the target's rows with the source's, row by row, as text.
 */
import { describe, expect, it } from "vitest";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import { streaming } from "../harness/pipelineRunner.js";
import { useTestPair } from "../harness/testPair.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

const pair = useTestPair("pipeline", async (db) => {
  await createFixture(db.source, db.target);
  await seed(db.source, 3000);
});
const config = () => pair.config({ tables: mappings() });

const converged = () =>
  waitFor(() => compareTables(pair.db.source, pair.db.target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 60_000, intervalMs: 200 });


describe("snapshot and streaming", () => {
  it("copies a consistent snapshot while writes continue, then streams until target == source", async () => {
    const load = runWriteLoad(pair.db.source, { transactions: 400, concurrency: 2 });
    const running = pair.start(config());
    const committed = await load;
    expect(committed).toBeGreaterThan(300);
    expect(await converged()).toBeNull();
    expect(running.phases).toContain("snapshot");
    expect(running.phases).toContain("streaming");
    const { rows } = await pair.db.target.query<{ state: string; n: string }>(
      "SELECT state, count(*)::text AS n FROM _pgferry.tables GROUP BY state",
    );
    expect(rows).toEqual([{ state: "ready", n: "4" }]);
  });

  it("leaves unchanged TOASTed values (long text, 1536-d vector) intact on UPDATE", async () => {
    pair.start(config());
    const before = await pair.db.target.query<{ body: string; embedding: string }>(
      "SELECT body, embedding::text FROM app.items WHERE id = md5('item7')::uuid",
    );
    expect(before.rows[0]?.body.length).toBeGreaterThan(3000);
    await pair.db.source.query("UPDATE items SET title = 'toast-test' WHERE id = md5('item7')::uuid");
    await waitFor(async () => (await pair.db.target.query("SELECT 1 FROM app.items WHERE title = 'toast-test'")).rowCount, { description: "update applied", until: (n) => n === 1 });
    const after = await pair.db.target.query<{ body: string; embedding: string }>(
      "SELECT body, embedding::text FROM app.items WHERE id = md5('item7')::uuid",
    );
    expect(after.rows[0]).toEqual(before.rows[0]);
    expect(await converged()).toBeNull();
  });

  it("resumes from the checkpoint after a stop without losing or repeating changes", async () => {
    const first = pair.start(config());
    await runWriteLoad(pair.db.source, { transactions: 100, seedOffset: 100_000 });
    await first.stop();
    // Written while nothing runs: must arrive after the restart, exactly once.
    await runWriteLoad(pair.db.source, { transactions: 150, seedOffset: 200_000 });
    const second = pair.start(config());
    expect(await converged()).toBeNull();
    expect(second.phases).not.toContain("snapshot");
  });

  it("applies TRUNCATE and keeps streaming the rows written after it", async () => {
    pair.start(config());
    await pair.db.source.query("BEGIN; TRUNCATE audit; INSERT INTO audit VALUES ('after', 'truncate', now()); COMMIT");
    expect(await converged()).toBeNull();
    const { rows } = await pair.db.target.query("SELECT actor FROM app.audit");
    expect(rows).toEqual([{ actor: "after" }]);
  });
});

describe("two instances, one slot", () => {
  it("keeps the second waiting as a standby, not ready and not failing, and lets it take over when the first stops", async () => {
    const running = pair.start(config());
    await streaming(running);
    const standbyConfig = config();
    standbyConfig.apply.onError = "stop"; // waiting for the lock is not an error, whatever the policy
    const standby = pair.start(standbyConfig);
    try {
      await waitFor(() => standby.phases.at(-1), { description: "the second instance waiting", until: (p) => p === "standby" });
      await runWriteLoad(pair.db.source, { transactions: 50, seedOffset: 300_000 });
      expect(await converged()).toBeNull();
      expect(standby.phases).toEqual(["standby"]);
      expect(standby.failure).toBeUndefined();

      await running.stop();
      await runWriteLoad(pair.db.source, { transactions: 50, seedOffset: 400_000 });
      await streaming(standby, 30_000);
      expect(await converged()).toBeNull();
      expect(standby.phases).not.toContain("snapshot");
      expect(standby.logs.some((l) => l.includes("pipeline lock acquired; taking over"))).toBe(true);
    } finally {
      await standby.stop();
    }
  });
});
