/**
 * The reorganisation example end to end: config/reorg.example.yaml, loaded as a user would load it,
 * maps the old flat schema of tools/demo/oldProject.ts (27 tables) into eight domain schemas. The
 * snapshot runs while the source takes writes, streaming continues under a mixed write load, the
 * pipeline is stopped mid-load and started again (resuming from its checkpoint, no second snapshot),
 * and every target table ends equal, row by row, to hand-written SQL over the source.
 */
import { resolve } from "node:path";
import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig, type Config } from "../../src/config/index.js";
import { loadPlan } from "../../src/plan/loadPlan.js";
import { describeOrigin, type EdgePlan, type TablePlan } from "../../src/plan/plan.js";
import { expectedQueries, oldProjectLoad, seedOldProject, SOURCE_DDL, TARGET_DDL } from "../../tools/demo/oldProject.js";
import { firstDifference } from "../harness/compare.js";
import type { TestDatabases } from "../harness/databases.js";
import { useTestPair } from "../harness/testPair.js";
import { pipelineFailed, streaming, type RunningPipeline } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";

const CONFIG_FILE = resolve(import.meta.dirname, "../../config/reorg.example.yaml");
const DOMAIN_SCHEMAS = ["shared_services", "auth_gateway", "security_service", "vendors", "ai_chat", "billing", "marketplace", "analytics"];

let db: TestDatabases;
let running: RunningPipeline | undefined;
/** The background write load of a test, stopped after it (also when the test fails). */
let load: { controller: AbortController; done: Promise<number> } | undefined;

/** The example file as is; only the connection URLs and the slot name (slots are per cluster) come from the environment. */
function config(): Config {
  return loadConfig(CONFIG_FILE, { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl, PGFERRY_SLOT: `pgferry_${db.name}` });
}


async function difference(): Promise<string | null> {
  for (const expected of expectedQueries()) {
    const [want, have] = await Promise.all([db.source.query<{ t: string }>(expected.source), db.target.query<{ t: string }>(expected.target)]);
    const diff = firstDifference(want.rows.map((r) => r.t), have.rows.map((r) => r.t));
    if (diff) return `${expected.table}: ${diff}`;
  }
  return null;
}

async function count(pool: pg.Pool, table: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
  return Number(rows[0]?.n);
}

async function tableNames(pool: pg.Pool, where: string): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT n.nspname || '.' || c.relname AS id FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ${where}`,
  );
  return rows.map((r) => r.id).sort();
}

const pair = useTestPair("reorg", async (created) => {
  db = created;
  await db.source.query(SOURCE_DDL);
  await db.target.query(TARGET_DDL);
  await seedOldProject(db.source, 1);
});
afterEach(async () => {
  load?.controller.abort();
  await load?.done.catch(() => undefined);
  load = undefined;
  await running?.stop();
  running = undefined;
});

describe("config/reorg.example.yaml", () => {
  it("maps every table of the old project into the domain schemas, and compiles against both catalogs", async () => {
    const cfg = config();
    const sources = [...new Set(cfg.tables.map((t) => t.from))].sort();
    const targets = [...new Set(cfg.tables.map((t) => t.to))].sort();
    expect(sources).toEqual(await tableNames(db.source, "n.nspname = 'public'"));
    expect(targets).toEqual(await tableNames(db.target, `n.nspname = ANY ('{${DOMAIN_SCHEMAS.join(",")}}')`));
    expect(expectedQueries().map((e) => e.table).sort()).toEqual(targets);

    const { plans, problems } = await loadPlan({ mappings: cfg.tables, snapshotFormat: cfg.snapshot.format }, db.source, db.target);
    expect(problems).toEqual([]);
    expect(plans).toHaveLength(27);
    const plan = (id: string): TablePlan => plans.find((p) => p.id === id)!;
    const edge = (from: string, to: string): EdgePlan => plan(from).edges.find((e) => e.table.id === to)!;
    const origin = (e: EdgePlan, column: string) => describeOrigin(e.origins[e.table.columns.findIndex((c) => c.name === column)]!);

    // Merge: four sources, each owning its rows by its discriminator; only the uuid-keyed source keeps its key.
    const merged = ["public.api_keys", "public.vendor_api_keys", "public.vendor_api_keys_v2", "public.service_tokens"].map((f) => edge(f, "security_service.api_keys"));
    expect(merged.map((e) => e.ownership?.find((o) => o.column === "source")?.value)).toEqual(["api_keys", "vendor_api_keys", "vendor_api_keys_v2", "service_tokens"]);
    expect(merged.map((e) => origin(e, "id"))).toEqual([
      "md5('api_keys:' || id)::uuid (sql)", "md5('vendor_api_keys:' || id)::uuid (sql)", "id", "md5('service_tokens:' || id)::uuid (sql)",
    ]);
    // Split: one users row feeds two tables, one of them filtered.
    expect(plan("public.users").edges.map((e) => [e.table.id, e.filter?.expr ?? null])).toEqual([
      ["auth_gateway.user_accounts", null], ["shared_services.profiles", "deleted_at IS NULL"],
    ]);
    expect(origin(edge("public.memory_entries", "security_service.memory_entries"), "customer_id")).toBe("'1' (constant)");
    expect(origin(edge("public.memory_entries", "security_service.memory_entries"), "type")).toBe("memory_type");
    // Snapshot paths: binary COPY where nothing changes, text COPY with the pushdown otherwise, the hook's code path for vendors.
    expect(edge("public.memory_chunks", "security_service.memory_chunks").copyFormat).toBe("binary");
    expect(edge("public.memory_entries", "security_service.memory_entries").copyFormat).toBe("text");
    expect(edge("public.vendors", "vendors.vendors").hook).toMatch(/config\/hooks\/normalizeWebsite\.mjs$/);
    // The partitioned table is one plan over its five partitions; REPLICA IDENTITY FULL tables are matched by whole rows.
    expect(plan("public.usage_analytics").source.partitions).toHaveLength(5);
    expect(edge("public.audit_log", "shared_services.audit_log").table.keyIndexes).toEqual([]);
    expect(edge("public.error_logs", "analytics.error_events").table.keyIndexes).toEqual([]);
    expect(edge("public.order_items", "marketplace.order_items").table.keyIndexes).toHaveLength(2);
  });

  it("runs snapshot + stream under write load with a restart mid-load, ending with every target table equal to its expectation", async () => {
    const cfg = config();
    cfg.apply.onError = "stop"; // no faults are injected: any apply error is a failure, reported at once
    // The snapshot is taken while the source takes writes.
    const duringSnapshot = oldProjectLoad(db.source, { transactions: 300, seedOffset: 0 });
    duringSnapshot.catch(() => undefined); // awaited below; a failure must not surface as unhandled first
    running = pair.start(cfg);
    await streaming(running);
    expect(running.phases).toContain("snapshot");

    const controller = new AbortController();
    load = { controller, done: oldProjectLoad(db.source, { transactions: 1_000_000, signal: controller.signal, seedOffset: 10_000_000 }) };
    load.done.catch(() => undefined);
    const first = running;
    await waitFor(() => first.batches, { description: "50 batches streamed before the stop", until: (n) => n >= 50, intervalMs: 100, failIf: pipelineFailed(first) });
    await first.stop(); // mid-load: whatever was received but not applied stays in the slot
    running = undefined;
    const whileStopped = await oldProjectLoad(db.source, { transactions: 200, seedOffset: 20_000_000 });

    const second = pair.start(cfg);
    running = second;
    await streaming(second);
    // A TRUNCATE of one merged source clears only its rows in security_service.api_keys.
    await db.source.query("TRUNCATE service_tokens");
    await db.source.query(`INSERT INTO service_tokens (service_name, token_hash, description) VALUES ('after-truncate', md5('t'), 'fresh')`);
    const resumedAt = second.batches;
    await waitFor(() => second.batches, { description: "50 batches streamed after the restart", until: (n) => n >= resumedAt + 50, intervalMs: 100, failIf: pipelineFailed(second) });
    controller.abort();
    const committed = (await duringSnapshot) + (await load.done) + whileStopped;
    expect(committed).toBeGreaterThan(500);

    expect(
      await waitFor(difference, { description: "every target table == its expected rows", until: (d) => d === null, timeoutMs: 60_000, intervalMs: 100, failIf: pipelineFailed(second) }),
    ).toBeNull();
    expect(second.phases).not.toContain("snapshot"); // resumed from the checkpoint

    // The load moved rows across filters and sources both ways; the counts show the mapping did its part.
    const errorEvents = await count(db.target, "analytics.error_events");
    expect(errorEvents).toBeGreaterThan(0);
    expect(errorEvents).toBeLessThan(await count(db.source, "error_logs"));
    expect(await count(db.target, "shared_services.profiles")).toBeLessThan(await count(db.source, "users"));
    const { rows } = await db.target.query<{ source: string }>("SELECT DISTINCT source FROM security_service.api_keys ORDER BY 1");
    expect(rows.map((r) => r.source)).toEqual(["api_keys", "service_tokens", "vendor_api_keys", "vendor_api_keys_v2"]);
  });
});
