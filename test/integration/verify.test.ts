/**
 * `pgferry verify` against real databases: equal after replication (also while writes stream),
 * and after drift on the target it exits 1 naming the missing, extra and different keys.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { startPipeline, streaming, testConfig, type RunningPipeline } from "../harness/pipelineRunner.js";
import { runCli, writeConfigFile } from "../harness/processRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { runWriteLoad } from "../harness/writeLoad.js";

let db: TestDatabases;
let running: RunningPipeline | undefined;
let file: string;

const config = () => testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() });

async function verify(...args: string[]): Promise<{ code: number | null; output: string }> {
  const run = runCli(["verify", "--config", file, ...args], { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
  const { code } = await run.exited;
  return { code, output: run.output.join("") };
}

beforeAll(async () => {
  db = await createTestDatabases("verify");
  await createFixture(db.source, db.target);
  await seed(db.source, 2500);
  const slot = config().source.slot;
  file = await writeConfigFile(`source:\n  url: \${SOURCE_URL}\n  slot: ${slot}\ntarget:\n  url: \${TARGET_URL}\ntables:\n${mappings().map((m) => `  - { from: ${m.from}, to: ${m.to} }`).join("\n")}\n`);
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
});
afterAll(async () => db?.drop());

describe("pgferry verify", () => {
  it("reports equal tables, also while changes stream", async () => {
    running = startPipeline(config());
    await streaming(running);
    await waitFor(() => compareTables(db.source, db.target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 60_000 });
    const quiet = await verify();
    expect(quiet.output).toContain("public.accounts -> app.accounts: equal (2500 rows)");
    expect(quiet.output).toContain("public.audit -> app.audit: equal (2500 rows)");
    expect(quiet.code).toBe(0);

    const controller = new AbortController();
    const load = runWriteLoad(db.source, { transactions: 400, concurrency: 1, maxStatements: 2, signal: controller.signal, seedOffset: 500_000 });
    const busy = await verify();
    controller.abort();
    await load;
    expect(busy.output).not.toContain("DIFFERENT");
    expect(busy.code).toBe(0);
  });

  it("exits 1 and names the keys that drifted on the target", async () => {
    await db.target.query(`
      UPDATE app.accounts SET email = 'drift' WHERE id = (SELECT min(id) FROM app.accounts);
      DELETE FROM app.accounts WHERE id = (SELECT max(id) FROM app.accounts);
      INSERT INTO app.accounts (id, email) VALUES (99999999999, 'extra');
      UPDATE app.audit SET action = 'tampered' WHERE ctid = (SELECT min(ctid) FROM app.audit);`);
    const { code, output } = await verify("--table", "public.accounts");
    expect(output).toMatch(/public\.accounts -> app\.accounts: DIFFERENT: 1 missing on target, 1 extra on target, 1 different/);
    expect(output).toContain("extra on target: key (99999999999)");
    expect(output).not.toContain("app.audit");
    expect(code).toBe(1);

    const json = await verify("--json", "--table", "app.audit");
    const reports = JSON.parse(json.output) as { target: string; status: string; missing: number; extra: number }[];
    // A keyless table's changed row shows as one missing and one extra row (rows are their own key).
    expect(reports).toEqual([expect.objectContaining({ target: "app.audit", status: "different", missing: 1, extra: 1 })]);
    expect(json.code).toBe(1);
  });
});
