/**
 * Each compared system on its own pair of clusters (so one system's WAL, slots and vacuum never
 * touch the other's measurements) and fresh databases there: the source cloned from the fixture
 * template, the target created empty with the fixture's DDL; both dropped afterwards.
 */
import type { Cleanup } from "./cleanup.js";
import { TEMPLATE_DB, type ClusterPair } from "./clusters.js";
import { binaryCopyPipe } from "./copyPipe.js";
import { checkpoint, createDatabase, withClient } from "./db.js";
import { FIXTURE_TABLES, schemaDdl } from "./fixture.js";
import { NativeReplicator } from "./nativeRunner.js";
import { PgferryReplicator } from "./pgferryRunner.js";
import { seconds } from "./poll.js";
import { planReorg } from "./reorgScenario.js";
import type { PipeResult } from "./report.js";
import { SystemRun, type SessionSettings, type SnapshotResult } from "./systemRun.js";

const MB = 1024 * 1024;

export interface BenchContext {
  cleanup: Cleanup;
  /** Everything of SessionSettings but what belongs to one system. */
  session: Omit<SessionSettings, "sourceUrl" | "targetUrl" | "clusters">;
  profileDir?: string;
  nativeCommit: "on" | "off";
}

/** A system ready to run on its fresh databases; `drop` removes them (after `run.finish()`). */
export interface PreparedSystem {
  run: SystemRun;
  drop(): Promise<void>;
}

/** Fresh source (template clone) and target (DDL in `targetSchema`) databases named `<prefix>_source/_target`. */
async function freshDatabases(ctx: BenchContext, pair: ClusterPair, prefix: string, targetDdl: string): Promise<{ sourceDb: string; sourceUrl: string; targetUrl: string; drop(): Promise<void> }> {
  const sourceDb = `${prefix}_source`;
  const targetDb = `${prefix}_target`;
  const dropSource = await createDatabase(pair.source, sourceDb, ctx.cleanup, TEMPLATE_DB);
  const dropTarget = await createDatabase(pair.target, targetDb, ctx.cleanup);
  await withClient(pair.target.url(targetDb), (c) => c.query(targetDdl));
  return {
    sourceDb,
    sourceUrl: pair.source.url(sourceDb),
    targetUrl: pair.target.url(targetDb),
    async drop() {
      await dropTarget();
      await dropSource();
    },
  };
}

export async function preparePgferry(ctx: BenchContext, pair: ClusterPair): Promise<PreparedSystem> {
  const db = await freshDatabases(ctx, pair, "pgferry", schemaDdl("app"));
  const replicator = new PgferryReplicator({
    sourceUrl: db.sourceUrl,
    targetUrl: db.targetUrl,
    tables: FIXTURE_TABLES.map((t) => ({ from: `public.${t}`, to: `app.${t}` })),
    slot: "bench_pgferry",
    targetSchema: "app",
    cleanup: ctx.cleanup,
    ...(ctx.profileDir ? { profileDir: ctx.profileDir } : {}),
  });
  const settings = { ...ctx.session, sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, clusters: [pair.source, pair.target] };
  return { run: new SystemRun(replicator, settings), drop: () => db.drop() };
}

export async function prepareNative(ctx: BenchContext, pair: ClusterPair): Promise<PreparedSystem> {
  const db = await freshDatabases(ctx, pair, "native", schemaDdl("public"));
  const replicator = new NativeReplicator({
    source: pair.source,
    sourceDb: db.sourceDb,
    targetUrl: db.targetUrl,
    tables: FIXTURE_TABLES.map((t) => `public.${t}`),
    name: "bench_native",
    synchronousCommit: ctx.nativeCommit,
    cleanup: ctx.cleanup,
  });
  const settings = { ...ctx.session, sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, clusters: [pair.source, pair.target] };
  return { run: new SystemRun(replicator, settings), drop: () => db.drop() };
}

/** The raw binary COPY pipe, straight from the template into a fresh target. */
export async function runCopyPipe(ctx: BenchContext, pair: ClusterPair): Promise<PipeResult | { error: string }> {
  const dropTarget = await createDatabase(pair.target, "pipe_target", ctx.cleanup);
  try {
    await withClient(pair.target.url("pipe_target"), (c) => c.query(schemaDdl("public")));
    await checkpoint(pair.source, pair.target);
    ctx.session.log("binary COPY pipe: 2 tables at a time");
    const tables = Object.entries(ctx.session.fixture.tables).map(([name, s]) => ({ name, bytes: s.bytes }));
    const started = performance.now();
    const rows = await binaryCopyPipe(pair.source.url(TEMPLATE_DB), pair.target.url("pipe_target"), tables);
    const took = seconds(started);
    ctx.session.log(`binary COPY pipe: ${took.toFixed(1)} s`);
    return { seconds: took, rows, rowsPerSecond: rows / took, mbPerSecond: ctx.session.fixture.bytes / MB / took };
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    await dropTarget();
  }
}

/** pgferry's snapshot with the reorganising example mapping, when there is one that fits the fixture. */
export async function runReorg(ctx: BenchContext, pair: ClusterPair): Promise<{ snapshot?: SnapshotResult; note: string }> {
  const plan = planReorg();
  if ("skip" in plan) return { note: plan.skip };
  const db = await freshDatabases(ctx, pair, "reorg", plan.targetDdl);
  try {
    const replicator = new PgferryReplicator({
      sourceUrl: db.sourceUrl,
      targetUrl: db.targetUrl,
      tables: plan.tables,
      slot: "bench_reorg",
      targetSchema: "public",
      cleanup: ctx.cleanup,
    });
    const run = new SystemRun(replicator, {
      ...ctx.session,
      scenarios: new Set(["snapshot"]),
      sourceUrl: db.sourceUrl,
      targetUrl: db.targetUrl,
      clusters: [pair.source, pair.target],
      verify: false,
    });
    await run.snapshot();
    const result = await run.finish();
    if (result.error) return { note: `${plan.note}; failed: ${result.error}` };
    const snapshot = result.snapshot;
    if (!snapshot) return { note: plan.note };
    // Only the mapped tables were copied: rates over their share of the fixture.
    const mapped = new Set(plan.tables.map((t) => String(t.from).slice("public.".length)));
    const parts = Object.entries(ctx.session.fixture.tables).filter(([name]) => mapped.has(name));
    const rows = parts.reduce((a, [, s]) => a + s.rows, 0);
    const bytes = parts.reduce((a, [, s]) => a + s.bytes, 0);
    return {
      snapshot: { ...snapshot, rows, bytes, rowsPerSecond: rows / snapshot.seconds, mbPerSecond: bytes / MB / snapshot.seconds },
      note: plan.note,
    };
  } finally {
    await db.drop();
  }
}
