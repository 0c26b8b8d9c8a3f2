/**
 * Crash safety: the daemon is killed with SIGKILL at random moments (during the snapshot and during
 * streaming) while the source keeps taking writes, restarted each time, and must end with the target
 * equal to the source, with no row lost and none applied twice (the keyless table would show it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { configYaml, runCli, writeConfigFile } from "../harness/processRunner.js";
import { seededRandom } from "../harness/random.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

let db: TestDatabases;

beforeAll(async () => {
  db = await createTestDatabases("crash");
  await createFixture(db.source, db.target);
  await seed(db.source, 6000);
});
afterAll(async () => db?.drop());

describe("crash safety", () => {
  it("survives 12 SIGKILLs during snapshot and streaming under load with target == source", async () => {
    const file = await writeConfigFile(configYaml(mappings()));
    const env = { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl };
    const random = seededRandom(Number(process.env.PGFERRY_CRASH_SEED ?? 42));
    const controller = new AbortController();
    const load = runWriteLoad(db.source, { transactions: 100_000, concurrency: 2, signal: controller.signal });
    const phases: string[] = [];
    const states = async () =>
      (
        await db.target.query<{ states: string | null }>("SELECT string_agg(state, ',' ORDER BY source_table) AS states FROM _pgferry.tables").catch(() => ({
          rows: [{ states: "none" }],
        }))
      ).rows[0]?.states ?? "none";
    for (let kill = 0; kill < 12; kill += 1) {
      const run = runCli(["run", "--config", file], env);
      if (kill >= 4) {
        // Later kills land in streaming: wait for every table to be ready (however slow the snapshot
        // is on a loaded machine), then kill at a random moment of the stream.
        await waitFor(states, { description: "every table copied before a streaming kill", until: (s) => s === "ready,ready,ready,ready", timeoutMs: 120_000, intervalMs: 100 });
      }
      // Early kills land in the snapshot (or before it); the random moment varies where.
      await new Promise((r) => setTimeout(r, kill < 4 ? 150 + random() * 900 : 100 + random() * 1500));
      phases.push(await states());
      run.child.kill("SIGKILL");
      await run.exited;
    }
    controller.abort();
    const committed = await load;
    expect(committed).toBeGreaterThan(100);
    // Kills hit both the snapshot (some table not ready) and streaming (all ready).
    expect(phases.some((p) => p === "none" || p.includes("copying") || p.includes("pending"))).toBe(true);
    expect(phases.some((p) => p === "ready,ready,ready,ready")).toBe(true);

    const final = runCli(["run", "--config", file], env);
    const difference = await waitFor(() => compareTables(db.source, db.target, pairs()), {
      description: "target == source after the last restart",
      until: (d) => d === null,
      timeoutMs: 90_000,
      intervalMs: 250,
    }).catch((error: Error) => `${error.message}\n${final.output.join("").slice(-3000)}`);
    expect(difference).toBeNull();
    final.child.kill("SIGTERM");
    expect(await final.exited).toEqual({ code: 0, signal: null });
  });
});
