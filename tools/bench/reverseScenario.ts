/**
 * The reverse pipeline's figures (docs/reverse.md), on TwoWay databases:
 *
 * - **reverse drain**: the reverse stopped (pgferry: its process; native: its subscription
 *   disabled), the drain workload written on the NEW side (`bench_tx` on the new tables, the same
 *   backlog as the one-way drain), then the reverse started and timed until a marker row committed
 *   after the backlog is on the old side. pgferry's forward pipeline keeps running meanwhile (it
 *   reads the reverse's writes on the old side and drops them by origin); native's forward
 *   subscription is off (see twoWay.ts).
 * - **bidirectional steady lag** (pgferry only: native replication on PostgreSQL 15 cannot run both
 *   ways): both directions running, each side writing its own lane of `bench_lane_tx` (disjoint rows)
 *   at the one-way lag scenario's rate, and a heartbeat probe per direction, measured as that
 *   scenario measures lag (lagProbe.ts).
 *
 * Native first, then pgferry, as the one-way scenarios alternate; each scenario ends with VACUUM and
 * CHECKPOINT, and each system with both databases compared table by table.
 */
import type { ClusterPair } from "./clusters.js";
import { checkpoint, connect, currentWalLsn } from "./db.js";
import type { FixtureSize } from "./fixture.js";
import { insertMarker, LagProbe, waitForMarker } from "./lagProbe.js";
import { seconds } from "./poll.js";
import type { PhaseProcessStats, Replicator } from "./replicator.js";
import type { BenchContext } from "./scenarios.js";
import type { Distribution } from "./stats.js";
import { FirstChangeWatch } from "./firstChange.js";
import { startupText, type DrainResult } from "./systemRun.js";
import { TwoWay, type TwoWaySystem } from "./twoWay.js";
import { CHANGES_PER_TRANSACTION, runBacklog, runSteady } from "./workload.js";

/** One system's two-way run: what went wrong, and how the two databases compare at the end. */
export interface TwoWaySystemResult {
  system: TwoWaySystem;
  /** Tables that differ between the old and the new database at the end (empty: all match). */
  mismatches?: string[];
  /** Conflicts pgferry recorded in either database (none expected: the two sides write disjoint rows). */
  conflicts?: number;
  cpuProfiles?: string[];
  error?: string;
}

export interface ReverseResult {
  /** pgferry's reverse drain, changes/s. */
  reverseDrainChangesPerSecond?: number;
  /** Native logical replication draining the same backlog new → old, changes/s. */
  nativeReverseDrainChangesPerSecond?: number;
  /** pgferry / native. */
  reverseDrainRatio?: number;
  /** pgferry's forward drain of the same run (the drain scenario), when it ran. */
  forwardDrainChangesPerSecond?: number;
  /** The drains in detail; `sourceLsn` is the new database's WAL position after the backlog. */
  pgferry?: DrainResult;
  native?: DrainResult;
}

export interface DirectionLag {
  heartbeatsSent: number;
  heartbeatsSeen: number;
  /** Seconds from a heartbeat's COMMIT on one side to the first poll that sees it on the other. */
  lagSeconds: Distribution;
  peakRssBytes?: number;
}

export interface BidirectionalResult {
  forwardLagP50Ms: number;
  forwardLagP99Ms: number;
  reverseLagP50Ms: number;
  reverseLagP99Ms: number;
  /** Length of the write window. */
  seconds: number;
  /** Workload transactions per second on each side (8 row changes each). */
  oldTransactionsPerSecond: number;
  newTransactionsPerSecond: number;
  forward: DirectionLag;
  reverse: DirectionLag;
  /** CPU seconds of the two pgferry processes over the window. */
  cpuSeconds: { forward: number; reverse: number };
}

export interface ReverseScenarios {
  reverse?: ReverseResult;
  bidirectional?: BidirectionalResult;
  twoWay: TwoWaySystemResult[];
}

/** First heartbeat id of each direction's probe (disjoint ranges; the probe reads them as int). */
const PROBE_IDS = { forward: 1, reverse: 100_000_001 };

/** What is being run, and a failure of one system's step recorded instead of thrown. */
class TwoWayRun {
  get system(): TwoWaySystem {
    return this.result.system;
  }

  readonly result: TwoWaySystemResult;
  drain: DrainResult | undefined;
  readonly twoWay: TwoWay;
  private readonly profiles: string[] = [];

  constructor(private readonly ctx: BenchContext, system: TwoWaySystem, pair: ClusterPair, size: FixtureSize) {
    this.result = { system };
    this.twoWay = new TwoWay({
      system,
      pair,
      size,
      cleanup: ctx.cleanup,
      synchronousCommit: ctx.synchronousCommit,
      timeoutMs: ctx.session.timeoutMs,
      log: ctx.session.log,
      ...(ctx.outputs ? { outputs: ctx.outputs } : {}),
    });
  }

  async step<T>(work: () => Promise<T>): Promise<T | undefined> {
    if (this.result.error !== undefined) return undefined;
    try {
      return await work();
    } catch (error) {
      this.result.error = (error as Error).message;
      this.ctx.session.log(`${this.result.system} two-way: FAILED: ${this.result.error}`);
      return undefined;
    }
  }

  /** Peak RSS of a stopped pgferry process, its CPU profile kept for the report. */
  rss(stats: PhaseProcessStats | undefined): number | undefined {
    if (stats?.cpuProfile) this.profiles.push(stats.cpuProfile);
    return stats?.peakRssBytes;
  }

  async finish(): Promise<TwoWaySystemResult> {
    const { twoWay } = this;
    await this.step(async () => {
      await twoWay.caughtUp();
      this.result.mismatches = await twoWay.mismatches();
      this.result.conflicts = await twoWay.conflicts();
      if (this.result.mismatches.length > 0) this.ctx.session.log(`${this.result.system} two-way: TABLES DIFFER after the run:\n  ${this.result.mismatches.join("\n  ")}`);
    });
    await twoWay.dispose();
    if (this.profiles.length > 0) this.result.cpuProfiles = this.profiles;
    return this.result;
  }
}

/** CPU seconds of a pgferry process so far (0 for native replication, which has none). */
async function processCpu(replicator: Replicator): Promise<number> {
  return (await replicator.cpuSeconds()).replicator ?? 0;
}

async function reverseDrain(run: TwoWayRun, ctx: BenchContext): Promise<DrainResult> {
  const { twoWay } = run;
  const { backlogTransactions: transactions, timeoutMs, log } = ctx.session;
  const name = `${twoWay.system} reverse`;
  run.rss(await twoWay.reverse.pause("warmup"));
  log(`${name}: building a backlog of ${transactions} transactions on the new side while the reverse is stopped`);
  const backlogSeconds = await runBacklog(twoWay.newUrl, 0, transactions, 2, twoWay.newSearchPath);
  const marker = twoWay.marker();
  await insertMarker(twoWay.newUrl, marker, twoWay.newSchema);
  const sourceLsn = await currentWalLsn(twoWay.newUrl);
  await checkpoint(...twoWay.clusters);
  log(`${name}: backlog built in ${backlogSeconds.toFixed(1)} s (new side at ${sourceLsn}); draining`);
  // Native's ENABLE starts its worker at once: the bench clusters' wal_retrieve_retry_interval is
  // low (clusters.ts), so PostgreSQL 15's launcher does not hold it back.
  const forwardCpuBefore = twoWay.system === "pgferry" ? await processCpu(twoWay.forward) : undefined;
  const firstChange = await FirstChangeWatch.start(twoWay.oldUrl, "public");
  const started = performance.now();
  await twoWay.reverse.resume("drain");
  await waitForMarker(twoWay.oldUrl, "public", marker, timeoutMs, () => twoWay.health());
  const drainSeconds = seconds(started);
  const firstChangeSeconds = await firstChange.finish(started);
  const cpuSeconds = await twoWay.reverse.cpuSeconds();
  if (forwardCpuBefore !== undefined) cpuSeconds.forwardReplicator = (await processCpu(twoWay.forward)) - forwardCpuBefore;
  const changes = transactions * CHANGES_PER_TRANSACTION;
  const startup = twoWay.reverse.startupSeconds;
  log(`${name}: drained ${changes} changes in ${drainSeconds.toFixed(1)} s (${startupText(startup, firstChangeSeconds)})`);
  const peakRssBytes = run.rss(await twoWay.reverse.pause("drain"));
  await twoWay.reverse.resume("streaming");
  await twoWay.caughtUp();
  await twoWay.settle();
  return {
    transactions,
    changes,
    backlogSeconds,
    seconds: drainSeconds,
    changesPerSecond: changes / drainSeconds,
    ...(startup === undefined ? {} : { startupSeconds: startup }),
    ...(firstChangeSeconds === undefined ? {} : { firstChangeSeconds }),
    sourceLsn,
    cpuSeconds,
    ...(peakRssBytes === undefined ? {} : { peakRssBytes }),
  };
}

async function bidirectionalLag(run: TwoWayRun, ctx: BenchContext): Promise<BidirectionalResult> {
  const { twoWay } = run;
  const { lagRate, lagSeconds, log } = ctx.session;
  // Fresh processes, so each one's peak RSS is this scenario's.
  run.rss(await twoWay.forward.pause("warmup"));
  run.rss(await twoWay.reverse.pause("warmup"));
  await twoWay.forward.resume("bidirectional");
  await twoWay.reverse.resume("bidirectional");
  await twoWay.caughtUp();
  log(`pgferry bidirectional: ${lagRate} transactions/s on each side for ${lagSeconds} s, a heartbeat every 100 ms each way`);
  const forwardProbe = new LagProbe({ sourceUrl: twoWay.oldUrl, targetUrl: twoWay.newUrl, targetSchema: twoWay.newSchema, firstId: PROBE_IDS.forward });
  const reverseProbe = new LagProbe({ sourceUrl: twoWay.newUrl, targetUrl: twoWay.oldUrl, sourceSchema: twoWay.newSchema, targetSchema: "public", firstId: PROBE_IDS.reverse });
  const oldWriter = await connect(twoWay.oldUrl, "pgferry-bench-steady");
  const newWriter = await connect(twoWay.newUrl, "pgferry-bench-steady");
  const cpuBefore = await Promise.all([processCpu(twoWay.forward), processCpu(twoWay.reverse)]);
  let steady: Awaited<ReturnType<typeof runSteady>>[];
  try {
    await newWriter.query(`SET search_path = ${twoWay.newSearchPath}`);
    await Promise.all([forwardProbe.start(), reverseProbe.start()]);
    steady = await Promise.all([
      runSteady(oldWriter, 0, lagRate, lagSeconds, "SELECT bench_lane_tx(0, $1)"),
      runSteady(newWriter, 0, lagRate, lagSeconds, "SELECT bench_lane_tx(1, $1)"),
    ]);
  } finally {
    await oldWriter.end().catch(() => undefined);
    await newWriter.end().catch(() => undefined);
  }
  const [forward, reverse] = await Promise.all([forwardProbe.finish(60_000), reverseProbe.finish(60_000)]);
  await twoWay.health();
  const cpuAfter = await Promise.all([processCpu(twoWay.forward), processCpu(twoWay.reverse)]);
  const [oldSteady, newSteady] = steady as [(typeof steady)[0], (typeof steady)[0]];
  const ms = (v: number) => Math.round(v * 10_000) / 10;
  log(
    `pgferry bidirectional: lag old → new p50 ${forward.lag.p50.toFixed(3)} s, p99 ${forward.lag.p99.toFixed(3)} s; ` +
      `new → old p50 ${reverse.lag.p50.toFixed(3)} s, p99 ${reverse.lag.p99.toFixed(3)} s`,
  );
  const forwardRss = run.rss(await twoWay.forward.pause("bidirectional"));
  const reverseRss = run.rss(await twoWay.reverse.pause("bidirectional"));
  await twoWay.forward.resume("streaming");
  await twoWay.reverse.resume("streaming");
  await twoWay.settle();
  const direction = (probe: typeof forward, rss: number | undefined): DirectionLag => ({
    heartbeatsSent: probe.sent,
    heartbeatsSeen: probe.seen,
    lagSeconds: probe.lag,
    ...(rss === undefined ? {} : { peakRssBytes: rss }),
  });
  return {
    forwardLagP50Ms: ms(forward.lag.p50),
    forwardLagP99Ms: ms(forward.lag.p99),
    reverseLagP50Ms: ms(reverse.lag.p50),
    reverseLagP99Ms: ms(reverse.lag.p99),
    seconds: Math.max(oldSteady.seconds, newSteady.seconds),
    oldTransactionsPerSecond: oldSteady.transactions / oldSteady.seconds,
    newTransactionsPerSecond: newSteady.transactions / newSteady.seconds,
    forward: direction(forward, forwardRss),
    reverse: direction(reverse, reverseRss),
    cpuSeconds: { forward: cpuAfter[0] - cpuBefore[0], reverse: cpuAfter[1] - cpuBefore[1] },
  };
}

/**
 * The reverse and bidirectional scenarios asked for, each system on fresh databases of its cluster
 * pair (after the one-way scenarios, whose databases are gone by then).
 */
export async function runReverseScenarios(ctx: BenchContext, pairs: { native: ClusterPair; pgferry: ClusterPair }, size: FixtureSize): Promise<ReverseScenarios> {
  const { scenarios } = ctx.session;
  const runs: TwoWayRun[] = [];
  if (scenarios.has("reverse")) runs.push(new TwoWayRun(ctx, "native", pairs.native, size));
  const pgferry = new TwoWayRun(ctx, "pgferry", pairs.pgferry, size);
  runs.push(pgferry);
  try {
    for (const run of runs) {
      ctx.cleanup.checkInterrupted();
      await run.step(() => run.twoWay.start());
    }
    if (scenarios.has("reverse")) {
      for (const run of runs) {
        ctx.cleanup.checkInterrupted();
        run.drain = await run.step(() => reverseDrain(run, ctx));
      }
    }
    ctx.cleanup.checkInterrupted();
    const bidirectional = scenarios.has("bidirectional") ? await pgferry.step(() => bidirectionalLag(pgferry, ctx)) : undefined;
    const twoWay: TwoWaySystemResult[] = [];
    for (const run of runs) twoWay.push(await run.finish());
    const out: ReverseScenarios = { twoWay };
    if (scenarios.has("reverse")) {
      const [p, n] = [pgferry.drain, runs[0]!.system === "native" ? runs[0]!.drain : undefined];
      out.reverse = {
        ...(p ? { reverseDrainChangesPerSecond: p.changesPerSecond } : {}),
        ...(n ? { nativeReverseDrainChangesPerSecond: n.changesPerSecond } : {}),
        ...(p && n ? { reverseDrainRatio: p.changesPerSecond / n.changesPerSecond } : {}),
        ...(p ? { pgferry: p } : {}),
        ...(n ? { native: n } : {}),
      };
    }
    if (bidirectional) out.bidirectional = bidirectional;
    return out;
  } finally {
    for (const run of runs) await run.twoWay.dispose();
  }
}
