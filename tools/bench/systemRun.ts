/**
 * One replication system through the scenarios, on its own clusters and fresh databases: initial
 * copy (timed as the snapshot scenario), then a backlog built while it is stopped and timed until
 * the marker after it arrives (drain), then a fixed write rate with heartbeats (lag), then a
 * comparison of every table on both sides. Later scenarios need the copy, so it always runs; only
 * the scenarios asked for are run and reported.
 */
import { checkpoint, connect, currentWalLsn, withClient } from "./db.js";
import { FirstChangeWatch } from "./firstChange.js";
import { insertMarker, LagProbe, waitForMarker } from "./lagProbe.js";
import { seconds } from "./poll.js";
import { searchSustainedRate, sourceMaxWindow, withPeakRss, type SystemRateResult } from "./rateSearch.js";
import type { PhaseProcessStats, Replicator } from "./replicator.js";
import type { Distribution } from "./stats.js";
import type { SessionSettings } from "./session.js";
import { verifyTables } from "./verifyTables.js";
import { CHANGES_PER_TRANSACTION, runBacklog, runSteady } from "./workload.js";

export interface SnapshotResult {
  seconds: number;
  rows: number;
  bytes: number;
  rowsPerSecond: number;
  mbPerSecond: number;
  peakRssBytes?: number;
}

export interface DrainResult {
  transactions: number;
  changes: number;
  /** Time the source took to produce the backlog (not part of the measurement). */
  backlogSeconds: number;
  /** From starting replication until the marker after the backlog is on the target. */
  seconds: number;
  changesPerSecond: number;
  /** Part of `seconds` the system spent starting up before streaming, when it says so. */
  startupSeconds?: number;
  /** Part of `seconds` until the first backlog change was visible on the target (firstChange.ts). */
  firstChangeSeconds?: number;
  sourceLsn: string;
  /** CPU seconds of the replicating processes during the drain (see Replicator.cpuSeconds). */
  cpuSeconds: Record<string, number>;
  peakRssBytes?: number;
}

export interface LagResult {
  seconds: number;
  transactionsPerSecond: number;
  changesPerSecond: number;
  heartbeatsSent: number;
  heartbeatsSeen: number;
  lagSeconds: Distribution;
  cpuSeconds: Record<string, number>;
  peakRssBytes?: number;
}

export interface SystemResult {
  system: string;
  snapshot?: SnapshotResult;
  drain?: DrainResult;
  lag?: LagResult;
  /** The maxrate scenario: the source's rate with this system replicating, the lag at the common rate, the highest sustained rate. */
  maxRate?: SystemRateResult;
  /** Tables that differ between source and target at the end (empty: all match). */
  mismatches?: string[];
  cpuProfiles?: string[];
  error?: string;
}

const MARKER_IDS = { drain: 2_000_000_001, lagWarmup: 2_000_000_002 };
const MB = 1024 * 1024;

/**
 * A system's run, one scenario at a time, so the caller can interleave systems (native snapshot,
 * pgferry snapshot, native drain, ...): on a shared machine, figures taken moments apart are
 * disturbed alike. After a failure the remaining steps are skipped; `finish` always cleans up.
 */
export class SystemRun {
  readonly result: SystemResult;
  private readonly profiles: string[] = [];

  constructor(private readonly replicator: Replicator, private readonly settings: SessionSettings) {
    this.result = { system: replicator.system };
  }

  /** The initial copy, which every later scenario needs; reported when the snapshot scenario is on. */
  async snapshot(): Promise<void> {
    await this.step(async () => {
      const { replicator, settings } = this;
      await checkpoint(...settings.clusters);
      settings.log(`${replicator.system}: initial copy`);
      const started = performance.now();
      await replicator.startWithSnapshot(settings.timeoutMs);
      const took = seconds(started);
      const { rows, bytes } = settings.fixture;
      const snapshot: SnapshotResult = { seconds: took, rows, bytes, rowsPerSecond: rows / took, mbPerSecond: bytes / MB / took, ...this.stats(await replicator.pause("snapshot")) };
      if (settings.scenarios.has("snapshot")) this.result.snapshot = snapshot;
      settings.log(`${replicator.system}: initial copy ${took.toFixed(1)} s`);
      await this.settle();
    });
  }

  async drain(): Promise<void> {
    await this.step(async () => {
      const measured = await drain(this.replicator, this.settings);
      this.result.drain = { ...measured, ...this.stats(await this.replicator.pause("drain")) };
      await this.settle();
    });
  }

  async lag(): Promise<void> {
    await this.step(async () => {
      const measured = await steadyLag(this.replicator, this.settings);
      this.result.lag = { ...measured, ...this.stats(await this.replicator.pause("lag")) };
      await this.settle();
    });
  }

  /** maxrate, first part: the source's rate with the writers unthrottled and this system replicating. */
  async sourceMax(): Promise<void> {
    await this.step(async () => {
      const source = await sourceMaxWindow(this.replicator, this.settings);
      this.result.maxRate = withPeakRss({ source }, this.stats(await this.replicator.pause("source-max")));
      await this.settle();
    });
  }

  /** maxrate, second part: the lag paced at `sourceTps` (the common source rate) and the highest sustained rate. */
  async rateSearch(sourceTps: number): Promise<void> {
    await this.step(async () => {
      const found = await searchSustainedRate(this.replicator, this.settings, sourceTps);
      this.result.maxRate = withPeakRss({ ...this.result.maxRate, ...found }, this.stats(await this.replicator.pause("rate-search")));
      await this.settle();
    });
  }

  /** Compares the tables (unless told not to), stops the system and removes its replication objects. */
  async finish(): Promise<SystemResult> {
    const { replicator, settings } = this;
    await this.step(async () => {
      if (settings.verify === false) return;
      const mismatches = await verifyTables(settings.sourceUrl, settings.targetUrl, replicator.targetSchema);
      this.result.mismatches = mismatches;
      if (mismatches.length > 0) settings.log(`${replicator.system}: TABLES DIFFER after the run:\n  ${mismatches.join("\n  ")}`);
    });
    await replicator.dispose();
    if (this.profiles.length > 0) this.result.cpuProfiles = this.profiles;
    return this.result;
  }

  private async step(work: () => Promise<void>): Promise<void> {
    if (this.result.error !== undefined) return;
    try {
      await work();
    } catch (error) {
      this.result.error = (error as Error).message;
      this.settings.log(`${this.replicator.system}: FAILED: ${this.result.error}`);
    }
  }

  private stats(s: PhaseProcessStats | undefined): { peakRssBytes?: number } {
    if (s?.cpuProfile) this.profiles.push(s.cpuProfile);
    return s?.peakRssBytes === undefined ? {} : { peakRssBytes: s.peakRssBytes };
  }

  /** Vacuum and checkpoint after a scenario, so this system's cleanup work does not land in the next measurement. */
  private async settle(): Promise<void> {
    const { settings } = this;
    await Promise.all([settings.sourceUrl, settings.targetUrl].map((url) => withClient(url, (c) => c.query("VACUUM"))));
    await checkpoint(...settings.clusters);
  }
}

async function drain(replicator: Replicator, settings: SessionSettings): Promise<Omit<DrainResult, "peakRssBytes">> {
  const { sourceUrl, targetUrl, backlogTransactions: transactions, log } = settings;
  log(`${replicator.system}: building a backlog of ${transactions} transactions while replication is stopped`);
  const backlogSeconds = await runBacklog(sourceUrl, 0, transactions);
  await insertMarker(sourceUrl, MARKER_IDS.drain);
  const sourceLsn = await currentWalLsn(sourceUrl);
  await checkpoint(...settings.clusters);
  log(`${replicator.system}: backlog built in ${backlogSeconds.toFixed(1)} s (source at ${sourceLsn}); draining`);
  const firstChange = await FirstChangeWatch.start(targetUrl, replicator.targetSchema);
  const started = performance.now();
  await replicator.resume("drain");
  await waitForMarker(targetUrl, replicator.targetSchema, MARKER_IDS.drain, settings.timeoutMs, () => replicator.health());
  const drainSeconds = seconds(started);
  const firstChangeSeconds = await firstChange.finish(started);
  const cpuSeconds = await replicator.cpuSeconds();
  const changes = transactions * CHANGES_PER_TRANSACTION;
  const startup = replicator.startupSeconds;
  log(`${replicator.system}: drained ${changes} changes in ${drainSeconds.toFixed(1)} s (${startupText(startup, firstChangeSeconds)})`);
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
  };
}

/** "streaming after 0.05 s, first change applied after 0.08 s", for the log. */
export function startupText(startup: number | undefined, firstChange: number | undefined): string {
  const parts = [
    ...(startup === undefined ? [] : [`streaming after ${startup.toFixed(2)} s`]),
    `first change applied after ${firstChange === undefined ? "?" : `${firstChange.toFixed(2)} s`}`,
  ];
  return parts.join(", ");
}

async function steadyLag(replicator: Replicator, settings: SessionSettings): Promise<Omit<LagResult, "peakRssBytes">> {
  const { sourceUrl, targetUrl, lagRate, lagSeconds, log } = settings;
  await replicator.resume("lag");
  // Streaming again (and caught up) before the clock starts.
  await insertMarker(sourceUrl, MARKER_IDS.lagWarmup);
  await waitForMarker(targetUrl, replicator.targetSchema, MARKER_IDS.lagWarmup, settings.timeoutMs, () => replicator.health());
  log(`${replicator.system}: ${lagRate} transactions/s for ${lagSeconds} s with a heartbeat every 100 ms`);
  const probe = new LagProbe({ sourceUrl, targetUrl, targetSchema: replicator.targetSchema, firstId: 1 });
  const writer = await connect(sourceUrl, "pgferry-bench-steady");
  let steady: Awaited<ReturnType<typeof runSteady>>;
  try {
    await probe.start();
    steady = await runSteady(writer, settings.backlogTransactions, lagRate, lagSeconds);
  } finally {
    await writer.end().catch(() => undefined);
  }
  const lag = await probe.finish(60_000);
  await replicator.health();
  const cpuSeconds = await replicator.cpuSeconds();
  log(`${replicator.system}: lag p50 ${lag.lag.p50.toFixed(3)} s, p99 ${lag.lag.p99.toFixed(3)} s, max ${lag.lag.max.toFixed(3)} s`);
  return {
    seconds: steady.seconds,
    transactionsPerSecond: steady.transactions / steady.seconds,
    changesPerSecond: (steady.transactions * CHANGES_PER_TRANSACTION) / steady.seconds,
    heartbeatsSent: lag.sent,
    heartbeatsSeen: lag.seen,
    lagSeconds: lag.lag,
    cpuSeconds,
  };
}
