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
import type { ProcessOutputs } from "./pgferryProcess.js";
import { seconds } from "./poll.js";
import { DOMAIN_DDL, identityTables, OLD_PROJECT_DDL, reorgTables, seedOldProjectDatabase } from "./reorgScenario.js";
import { targetIndexDdl, type TargetIndexes } from "./targetIndexes.js";
import type { SessionSettings } from "./session.js";
import { SystemRun, type SnapshotResult } from "./systemRun.js";

const MB = 1024 * 1024;

export interface BenchContext {
  cleanup: Cleanup;
  /** Everything of SessionSettings but what belongs to one system. */
  session: Omit<SessionSettings, "sourceUrl" | "targetUrl" | "clusters">;
  outputs?: ProcessOutputs;
  synchronousCommit: "on" | "off";
  /** Secondary indexes on both systems' target tables (default `fixture`: the fixture's own). */
  targetIndexes?: TargetIndexes;
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
  const db = await freshDatabases(ctx, pair, "pgferry", schemaDdl("app") + targetIndexDdl("app", ctx.targetIndexes ?? "fixture"));
  const replicator = new PgferryReplicator({
    sourceUrl: db.sourceUrl,
    targetUrl: db.targetUrl,
    tables: FIXTURE_TABLES.map((t) => ({ from: `public.${t}`, to: `app.${t}` })),
    slot: "bench_pgferry",
    targetSchema: "app",
    synchronousCommit: ctx.synchronousCommit,
    cleanup: ctx.cleanup,
    ...(ctx.outputs ? { outputs: ctx.outputs } : {}),
  });
  const settings = { ...ctx.session, sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, clusters: [pair.source, pair.target] };
  return { run: new SystemRun(replicator, settings), drop: () => db.drop() };
}

export async function prepareNative(ctx: BenchContext, pair: ClusterPair): Promise<PreparedSystem> {
  const db = await freshDatabases(ctx, pair, "native", schemaDdl("public") + targetIndexDdl("public", ctx.targetIndexes ?? "fixture"));
  const replicator = new NativeReplicator({
    source: pair.source,
    sourceDb: db.sourceDb,
    targetUrl: db.targetUrl,
    tables: FIXTURE_TABLES.map((t) => `public.${t}`),
    name: "bench_native",
    synchronousCommit: ctx.synchronousCommit,
    cleanup: ctx.cleanup,
  });
  const settings = { ...ctx.session, sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, clusters: [pair.source, pair.target] };
  return { run: new SystemRun(replicator, settings), drop: () => db.drop() };
}

/** The binary COPY pipe's figures: the snapshot's floor. */
export interface PipeResult {
  seconds: number;
  rows: number;
  rowsPerSecond: number;
  mbPerSecond: number;
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

/**
 * pgferry's snapshot with config/reorg.example.yaml on the old project it maps (seeded at
 * `scale`), and with an identity mapping of the same tables and data: the ratio is the transforms' cost.
 */
export async function runReorg(ctx: BenchContext, pair: ClusterPair, scale = 20): Promise<{ snapshot?: SnapshotResult; note: string }> {
  const tables = reorgTables();
  const dropSource = await createDatabase(pair.source, "reorg_source", ctx.cleanup);
  const drops: (() => Promise<void>)[] = [dropSource];
  try {
    const sourceUrl = pair.source.url("reorg_source");
    const data = await seedOldProjectDatabase(sourceUrl, scale);
    const timed = async (name: string, entries: Record<string, unknown>[], targetDdl: string): Promise<SnapshotResult | { error: string }> => {
      drops.push(await createDatabase(pair.target, name, ctx.cleanup));
      const targetUrl = pair.target.url(name);
      await withClient(targetUrl, (c) => c.query(`CREATE EXTENSION IF NOT EXISTS vector; ${targetDdl}`));
      const replicator = new PgferryReplicator({ sourceUrl, targetUrl, tables: entries, slot: `bench_${name}`, targetSchema: "public", cleanup: ctx.cleanup });
      const run = new SystemRun(replicator, {
        ...ctx.session,
        scenarios: new Set(["snapshot"]),
        sourceUrl,
        targetUrl,
        clusters: [pair.source, pair.target],
        fixture: { ...data, tables: {} },
        verify: false,
      });
      await run.snapshot();
      const result = await run.finish();
      return result.error ? { error: result.error } : (result.snapshot ?? { error: "no snapshot result" });
    };
    const identity = await timed("reorg_identity", identityTables(tables), OLD_PROJECT_DDL);
    const reorg = await timed("reorg_domains", tables, DOMAIN_DDL);
    const about = `the 27-table old project at scale ${scale} (${data.rows.toLocaleString("en-US")} rows, ${(data.bytes / MB).toFixed(0)} MB), ${tables.length} entries`;
    if ("error" in reorg) return { note: `${about}; failed: ${reorg.error}` };
    const versus = "error" in identity ? `identity failed: ${identity.error}` : `identity mapping of the same data ${identity.seconds.toFixed(2)} s, reorg / identity ${(reorg.seconds / identity.seconds).toFixed(2)}`;
    return { snapshot: reorg, note: ` (${about}; ${versus})` };
  } finally {
    for (const drop of drops.reverse()) await drop().catch(() => undefined);
  }
}
