/**
 * Bounded memory (docs/design.md, rule 5): a 1,000,000-row source transaction streams through the real CLI
 * process, applied progressively inside one target transaction, with the process's peak RSS under
 * 300 MB. The target must then hold exactly the source's rows.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { configYaml, runCli, writeConfigFile, type ChildRun } from "../harness/processRunner.js";
import { waitFor } from "../harness/waitFor.js";

const ROWS = 1_000_000;
const DDL = "CREATE TABLE big (id bigint PRIMARY KEY, amount numeric(20,4) NOT NULL, note text NOT NULL)";
const CHECKSUM = "SELECT count(*)::text AS n, coalesce(sum(hashtext(t::text)::bigint), 0)::text AS h FROM %s AS t";

let db: TestDatabases;
let run: ChildRun | undefined;

beforeAll(async () => {
  db = await createTestDatabases("big_transaction");
  await db.source.query(DDL);
  await db.target.query("CREATE SCHEMA app");
  await db.target.query(DDL.replace("TABLE big", "TABLE app.big"));
});
afterAll(async () => {
  run?.child.kill("SIGKILL");
  await db?.drop();
});

describe("a 1,000,000-row transaction", () => {
  it("streams with peak RSS below 300 MB and lands whole", async () => {
    const file = await writeConfigFile(configYaml([{ from: "public.big", to: "app.big" }], "", "pgferry_big"));
    run = runCli(["run", "--config", file], { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
    await waitFor(async () => (await db.target.query<{ state: string }>("SELECT state FROM _pgferry.tables")).rows[0]?.state, {
      description: "the (empty) table copied",
      until: (s) => s === "ready",
      timeoutMs: 60_000,
    });
    const committedAt = performance.now();
    await db.source.query(
      `INSERT INTO big SELECT g, g * 1.0001, 'note ' || g || ' ' || repeat('x', 60) FROM generate_series(1, ${ROWS}) AS g`,
    );
    let peak = 0;
    await waitFor(
      async () => {
        peak = Math.max(peak, run!.peakRss());
        return Number((await db.target.query<{ n: string }>("SELECT count(*)::text AS n FROM app.big")).rows[0]?.n);
      },
      { description: `${ROWS} rows on the target`, until: (n) => n === ROWS, timeoutMs: 400_000, intervalMs: 1000 },
    );
    const seconds = (performance.now() - committedAt) / 1000;
    peak = Math.max(peak, run.peakRss());
    console.log(`1M-row transaction: ${seconds.toFixed(1)} s after commit (${Math.round(ROWS / seconds)} rows/s), peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
    const [expected, actual] = await Promise.all([
      db.source.query(CHECKSUM.replace("%s", "big")),
      db.target.query(CHECKSUM.replace("%s", "app.big")),
    ]);
    expect(actual.rows[0]).toEqual(expected.rows[0]);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(300 * 2 ** 20);
    run.child.kill("SIGTERM");
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
