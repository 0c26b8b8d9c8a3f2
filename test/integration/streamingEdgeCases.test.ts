/**
 * What operators run into while streaming: a target constraint the source does not have (the
 * pipeline waits or stops with the table and SQLSTATE, the slot keeps the WAL, and after the fix
 * nothing is lost), source DDL (added, renamed and dropped columns), and a slot that must advance
 * while only unpublished tables are written.
 */
import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { createFixture, mappings, pairs, seed } from "../fixtures/appSchema.js";
import { compareTables } from "../harness/compare.js";
import type { TestDatabases } from "../harness/databases.js";
import { useTestPair } from "../harness/testPair.js";
import { streaming, type RunningPipeline } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { withPooledClient } from "../../src/sql/pools.js";

let db: TestDatabases;
let running: RunningPipeline | undefined;

const slot = () => `pgferry_${db.name}`;
const converged = () =>
  waitFor(() => compareTables(db.source, db.target, pairs()), { description: "target == source", until: (d) => d === null, timeoutMs: 60_000, intervalMs: 200 });
const confirmedFlush = async () =>
  (await db.source.query<{ lsn: string }>("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [slot()])).rows[0]?.lsn;

function config(onError: "retry" | "stop", tables = mappings(), columns = "") {
  const entries = tables.map((t) => `  - from: ${t.from}\n    to: ${t.to}\n${t.from === "public.items" ? columns : ""}`).join("\n");
  return parseConfig(
    `source:\n  url: \${SOURCE_URL}\n  slot: ${slot()}\n  publication: ${slot()}\ntarget:\n  url: \${TARGET_URL}\n` +
      `apply:\n  onError: ${onError}\n  retry: { maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 300 }\nlog:\n  level: info\n  format: json\ntables:\n${entries}\n`,
    "edge.yaml",
    { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl },
  );
}

const pair = useTestPair("edge_cases", async (created) => {
  db = created;
  await createFixture(db.source, db.target);
  await seed(db.source, 500);
});
afterEach(async () => {
  // What a test left behind when it failed halfway must not fail the next ones.
  await db.target.query("DROP INDEX IF EXISTS app.accounts_email_unique");
  await db.source.query("ALTER TABLE accounts DROP COLUMN IF EXISTS nickname");
});

describe("a target constraint the source does not have", () => {
  it("holds the change (retrying, or stopped) with table and SQLSTATE, keeps the WAL, and loses nothing once fixed", async () => {
    running = pair.start(config("retry"));
    await streaming(running);
    expect(await converged()).toBeNull();
    await db.target.query("CREATE UNIQUE INDEX accounts_email_unique ON app.accounts (email)");
    // The failing transaction, and a WAL position inside it before its commit record: the slot may
    // still advance over unrelated WAL up to there (idle keepalives), never past that commit.
    const insideFailing = await withPooledClient(db.source, async (client) => {
      await client.query("BEGIN");
      await client.query("INSERT INTO accounts (id, email) VALUES (900001, 'twice@example.com'), (900002, 'twice@example.com')");
      const { rows } = await client.query<{ lsn: string }>("SELECT pg_current_wal_insert_lsn()::text AS lsn");
      await client.query("COMMIT");
      return rows[0]!.lsn;
    });
    await db.source.query("INSERT INTO accounts (id, email) VALUES (900003, 'after@example.com')");

    const failure = await waitFor(() => running!.logs.find((l) => l.includes("23505")), { description: "the apply error logged", timeoutMs: 30_000 });
    expect(failure).toContain("app.accounts");
    expect(running.phases).toContain("retrying");
    // Nothing after the failing transaction was applied or acknowledged.
    expect((await db.target.query("SELECT 1 FROM app.accounts WHERE id IN (900001, 900002, 900003)")).rowCount).toBe(0);
    const kept = await db.source.query<{ kept: boolean }>("SELECT confirmed_flush_lsn <= $1::pg_lsn AS kept FROM pg_replication_slots WHERE slot_name = $2", [insideFailing, slot()]);
    expect(kept.rows[0]?.kept).toBe(true);

    await db.target.query("DROP INDEX app.accounts_email_unique"); // the operator's fix
    expect(await converged()).toBeNull();
    await running.stop();

    // With onError: stop the pipeline ends instead, and a restart after the fix resumes from the checkpoint.
    await db.target.query("CREATE UNIQUE INDEX accounts_email_unique ON app.accounts (email) WHERE id > 900003");
    running = pair.start(config("stop"));
    await streaming(running);
    await db.source.query("INSERT INTO accounts (id, email) VALUES (900004, 'again@example.com'), (900005, 'again@example.com')");
    const error = await running.done.then(() => null, (e: unknown) => e as Error);
    expect(error?.message).toMatch(/target rejected insert of \d+ row\(s\) into app\.accounts: SQLSTATE 23505/);
    // The key is identified by its columns and a fingerprint, never by its value.
    const fingerprint = createHash("sha256").update("again@example.com").digest("hex").slice(0, 16);
    expect(error?.message).toContain(`key (email) sha256 ${fingerprint}`);
    expect(error?.message).not.toContain("again@example.com");
    expect(running.phases).toContain("failed");
    await db.target.query("DROP INDEX app.accounts_email_unique");
    running = pair.start(config("stop"));
    expect(await converged()).toBeNull();
  });
});

describe("a unique value moved between rows", () => {
  it("is applied in source order after the batched attempt collides (the constraint exists on both sides)", async () => {
    for (const [pool, schema] of [[db.source, "public"], [db.target, "app"]] as const) {
      await pool.query(`CREATE TABLE ${schema}.slots (id int PRIMARY KEY, slot int UNIQUE, n int)`);
    }
    await db.source.query("INSERT INTO slots VALUES (1, 1, 0), (2, NULL, 0)");
    const tables = [...mappings(), { from: "public.slots", to: "app.slots" }];
    running = pair.start(config("retry", tables));
    await streaming(running);
    // Several source transactions in one target batch: collapsed per key, id 2 would be written before id 1.
    await db.source.query(`
      BEGIN; UPDATE slots SET n = 1 WHERE id = 2; COMMIT;
      BEGIN; UPDATE slots SET slot = NULL WHERE id = 1; UPDATE slots SET slot = 1 WHERE id = 2; COMMIT;
      BEGIN; UPDATE slots SET n = 2 WHERE id = 1; COMMIT;`);
    await waitFor(async () => (await db.target.query<{ t: string }>("SELECT string_agg(s::text, ' ' ORDER BY id) AS t FROM app.slots s")).rows[0]?.t, {
      description: "the slot moved on the target",
      until: (t) => t === "(1,,2) (2,1,1)",
      timeoutMs: 30_000,
    });
    console.log(`unique violations retried in order: ${running.logs.filter((l) => l.includes("23505")).length}`);
    await running.stop();
    running = undefined;
    for (const [pool, schema] of [[db.source, "public"], [db.target, "app"]] as const) await pool.query(`DROP TABLE ${schema}.slots`);
  });
});

describe("source DDL while streaming", () => {
  it("ignores an added column, and stops naming a renamed mapped column until the mapping follows", async () => {
    running = pair.start(config("stop"));
    await streaming(running);
    await db.source.query("ALTER TABLE accounts ADD COLUMN nickname text");
    await db.source.query("INSERT INTO accounts (id, email, nickname) VALUES (910001, 'added@example.com', 'nick')");
    await waitFor(async () => (await db.target.query<{ email: string }>("SELECT email FROM app.accounts WHERE id = 910001")).rows[0]?.email, {
      description: "the row with the new column applied",
      until: (email) => email === "added@example.com",
    });
    expect(running.logs.some((l) => l.includes("source columns not in the mapping are ignored") && l.includes("nickname"))).toBe(true);
    await db.source.query("ALTER TABLE accounts DROP COLUMN nickname");

    await db.source.query("ALTER TABLE items RENAME COLUMN title TO headline");
    await db.source.query("UPDATE items SET headline = 'renamed' WHERE id = (SELECT id FROM items ORDER BY id LIMIT 1)");
    const error = await running.done.then(() => null, (e: unknown) => e as Error);
    expect(error?.message).toBe("source column public.items.title is mapped but no longer in the replication stream (was it dropped or renamed?)");
    running = undefined;

    // The operator maps the renamed column and starts again; the held change arrives.
    running = pair.start(config("stop", mappings(), "    columns: { title: headline }\n"));
    await waitFor(async () => (await db.target.query("SELECT 1 FROM app.items WHERE title = 'renamed'")).rowCount, { description: "the held update applied", until: (n) => n === 1 });
    await running.stop();
    await db.source.query("ALTER TABLE items RENAME COLUMN headline TO title");
    running = pair.start(config("stop"));
    expect(await converged()).toBeNull();
  });
});

describe("writes only to unpublished tables", () => {
  it("still advance the slot, so the source does not keep WAL for nothing", async () => {
    running = pair.start(config("retry"));
    await streaming(running);
    await db.source.query("CREATE TABLE unpublished_log (id bigserial PRIMARY KEY, payload text)");
    const start = await confirmedFlush();
    for (let i = 0; i < 5; i += 1) await db.source.query("INSERT INTO unpublished_log (payload) SELECT repeat('x', 500) FROM generate_series(1, 20000)");
    const walAfterWrites = (await db.source.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn;
    await waitFor(
      async () => (await db.source.query<{ behind: boolean }>("SELECT confirmed_flush_lsn < $2::pg_lsn AS behind FROM pg_replication_slots WHERE slot_name = $1", [slot(), walAfterWrites])).rows[0]?.behind,
      { description: `the slot's confirmed flush to pass ${walAfterWrites} (it was ${start})`, until: (behind) => behind === false, timeoutMs: 30_000, intervalMs: 250 },
    );
  });
});
