/**
 * The maxrate scenario (issue 15: steady p99 lag ≤ 100 ms at the source's maximum sustainable rate).
 *
 * - **The source's maximum**: RATE_SESSIONS sessions run the bench workload (`bench_tx`, 8 row
 *   changes per transaction) unthrottled, with durable commits as in the lag scenario, while the
 *   system under test replicates; the rate is the commits per second after a warm-up. Measured on
 *   each system's own source cluster with that system replicating (the replicator's CPU is part of
 *   what the 2-core machine can give the source); the lower of the two is the common rate both
 *   systems are then paced at, so their lag figures are taken at the same rate.
 * - **Steady lag at that rate**: the same sessions paced at the common rate, with the lag probe of
 *   the lag scenario (a heartbeat committed on the source, the target polled every 20 ms), here a
 *   heartbeat every 50 ms for twice the samples in a shorter window.
 * - **The highest sustained rate**: a window is *sustained* when every heartbeat arrived, the lag
 *   did not grow (see `judgeLag`) and p99 ≤ 100 ms. Sustained at the common rate ends the search (the
 *   system keeps up with the source); otherwise a bisection below it, SEARCH_STEPS windows: half the
 *   rate first, then the geometric middle of the highest sustained and the lowest failed rate.
 *
 * Each window is followed by waiting until a marker committed after it is on the target, so a
 * window that fell behind does not leave its backlog to the next one. Each part starts the system
 * afresh (pgferry: a new process, for its peak RSS) and warms it up first (PHASE_WARMUP_SECONDS).
 */
import { insertMarker, LagProbe, waitForMarker } from "./lagProbe.js";
import { withClient } from "./db.js";
import { seconds, sleep } from "./poll.js";
import { nextTransaction, WriterSessions, type WriterWindow } from "./rateWorkload.js";
import type { Replicator } from "./replicator.js";
import { median, type Distribution } from "./stats.js";
import type { SessionSettings } from "./session.js";

/** Writer sessions: twice the bench machine's 2 cores, so both stay busy while some sessions wait on their commit's WAL flush. */
export const RATE_SESSIONS = 4;
/** The lag goal of issue 15. */
export const LAG_GOAL_SECONDS = 0.1;
/** A window's lag may rise this much from its first quarter to its last before it counts as growing. */
export const GROWTH_LIMIT_SECONDS = 0.025;
export const HEARTBEAT_MS = 50;
/**
 * Writers run this long before the probe starts: a step from idle to a rate near a system's limit
 * makes a lag spike (both systems showed one in smoke runs) that takes seconds to drain, and the
 * window is to measure the steady lag.
 */
export const WARMUP_SECONDS = 2;
/**
 * One session writes unthrottled this long after each resume, before the first window: a fresh
 * pgferry process runs its hot paths unoptimised at first, and the lag it builds then takes long to
 * drain at a rate near its limit. A replicator that has run for a while is past that.
 */
export const PHASE_WARMUP_SECONDS = 2;
/** Paced windows below the source's rate when the system does not sustain that. */
export const SEARCH_STEPS = 3;

const HEARTBEAT_IDS = 10_000_000;
const MARKER_IDS = 2_000_001_000;

export interface RateWindow {
  /** The paced rate asked for, transactions/s; absent: writers unthrottled. */
  targetTps?: number;
  /** Transactions committed per second over the measured part of the window (after the warm-up). */
  achievedTps: number;
  seconds: number;
  heartbeatsSent: number;
  heartbeatsSeen: number;
  lagSeconds: Distribution;
  /** Median lag of the window's last quarter of heartbeats minus that of its first quarter. */
  lagGrowthSeconds: number;
  /** Every heartbeat arrived and the lag did not grow (judgeLag). */
  keptUp: boolean;
  /** Kept up with p99 lag ≤ 100 ms. */
  sustained: boolean;
  /** From the writers stopping until a marker committed then is on the target. */
  catchUpSeconds: number;
}

export interface SystemRateResult {
  /** Writers unthrottled, this system replicating: `achievedTps` is the source's rate. */
  source?: RateWindow;
  /** Paced at the common rate (the lower of the systems' source rates). */
  atSourceMax?: RateWindow;
  /** Highest achieved rate of a sustained paced window (at the common rate when that is sustained). */
  maxSustainedTps?: number;
  /** Lowest paced rate that was not sustained, when one was tried: the bracket above maxSustainedTps. */
  lowestUnsustainedTps?: number;
  /** The paced windows in the order run. */
  windows?: RateWindow[];
  peakRssBytes?: number;
}

/** The run's figures (JSON `maxRate`; numbers only, so --repeat summarises each). */
export interface MaxRateSummary {
  /** The common rate both systems were paced at: the lower source rate, transactions/s (8 changes each). */
  sourceTps: number;
  /** The source's unthrottled rate on each system's clusters, with that system replicating. */
  sourceTpsWith: { pgferry?: number; native?: number };
  /** Highest paced rate with p99 ≤ 100 ms and no growing lag (equal to sourceTps: keeps up with the source). */
  pgferryTps?: number;
  nativeTps?: number;
  p99AtSourceMaxMs: { pgferry?: number; native?: number };
}

/**
 * Whether a window's system kept up: every heartbeat arrived, and the median lag of the last
 * quarter of heartbeats is at most GROWTH_LIMIT_SECONDS above that of the first quarter. A system
 * that falls behind builds a backlog that grows for the whole window, so its lag rises steadily;
 * medians of quarters ignore a single stall (a checkpoint, a vacuum) that a straight line would
 * follow. Over a 10 s window (7.5 s between the quarters' middles) this catches a lag rising by
 * 3.3 ms/s or more: a replicator short of the offered rate by 0.33 % or more.
 */
export function judgeLag(samples: readonly (number | undefined)[]): { growthSeconds: number; keptUp: boolean } {
  const seen = samples.filter((v): v is number => v !== undefined);
  const quarter = Math.max(1, Math.floor(samples.length / 4));
  if (seen.length < samples.length || samples.length < 4) return { growthSeconds: Number.NaN, keptUp: false };
  const growthSeconds = median(seen.slice(-quarter)) - median(seen.slice(0, quarter));
  return { growthSeconds, keptUp: growthSeconds <= GROWTH_LIMIT_SECONDS };
}

/** Resumes the system, warms it up and waits until it has applied a marker committed after that. */
async function streaming(replicator: Replicator, settings: SessionSettings, label: string, marker: number): Promise<void> {
  await replicator.resume(label);
  const writer = await WriterSessions.open(settings.sourceUrl, 1);
  try {
    await writer.run(await withClient(settings.sourceUrl, nextTransaction), PHASE_WARMUP_SECONDS, undefined, 0);
  } finally {
    await writer.close();
  }
  await insertMarker(settings.sourceUrl, marker);
  await waitForMarker(settings.targetUrl, replicator.targetSchema, marker, settings.timeoutMs, () => replicator.health());
}

/** One window of writes (paced at `rate`, or unthrottled) with the lag probe; ends once the system has caught up. */
async function rateWindow(replicator: Replicator, settings: SessionSettings, index: number, rate: number | undefined): Promise<RateWindow> {
  const { sourceUrl, targetUrl, rateSeconds, timeoutMs } = settings;
  const targetSchema = replicator.targetSchema;
  const first = await withClient(sourceUrl, nextTransaction);
  const probe = new LagProbe({ sourceUrl, targetUrl, targetSchema, firstId: HEARTBEAT_IDS + index * 1_000_000, intervalMs: HEARTBEAT_MS });
  const writers = await WriterSessions.open(sourceUrl, RATE_SESSIONS);
  let written: WriterWindow;
  try {
    [written] = await Promise.all([writers.run(first, WARMUP_SECONDS + rateSeconds, rate, WARMUP_SECONDS), sleep(WARMUP_SECONDS * 1000).then(() => probe.start())]);
  } catch (error) {
    await probe.finish(0).catch(() => undefined);
    throw error;
  } finally {
    await writers.close();
  }
  const stoppedAt = performance.now();
  const marker = MARKER_IDS + 2 * index + 1;
  const [lag, catchUpSeconds] = await Promise.all([
    probe.finish(timeoutMs),
    (async () => {
      await insertMarker(sourceUrl, marker);
      await waitForMarker(targetUrl, targetSchema, marker, timeoutMs, () => replicator.health());
      return seconds(stoppedAt);
    })(),
  ]);
  await replicator.health();
  const { growthSeconds, keptUp } = judgeLag(lag.samples);
  const window: RateWindow = {
    ...(rate === undefined ? {} : { targetTps: rate }),
    achievedTps: written.transactions / written.seconds,
    seconds: written.seconds,
    heartbeatsSent: lag.sent,
    heartbeatsSeen: lag.seen,
    lagSeconds: lag.lag,
    lagGrowthSeconds: growthSeconds,
    keptUp,
    sustained: keptUp && lag.lag.p99 <= LAG_GOAL_SECONDS,
    catchUpSeconds,
  };
  settings.log(`${replicator.system}: ${windowText(window)}`);
  return window;
}

function windowText(w: RateWindow): string {
  const pace = w.targetTps === undefined ? `unthrottled (${RATE_SESSIONS} sessions)` : `paced at ${w.targetTps.toFixed(0)} tx/s`;
  const lag = `lag p50 ${w.lagSeconds.p50.toFixed(3)} s, p99 ${w.lagSeconds.p99.toFixed(3)} s, growth ${(w.lagGrowthSeconds * 1000).toFixed(0)} ms`;
  const verdict = !w.keptUp ? "fell behind" : w.sustained ? "sustained" : "kept up, p99 over 100 ms";
  return `${pace}: ${w.achievedTps.toFixed(0)} tx/s, ${lag}, caught up ${w.catchUpSeconds.toFixed(2)} s after the writers stopped: ${verdict}`;
}

/** The source's rate with the writers unthrottled and `replicator` running (window 0). */
export async function sourceMaxWindow(replicator: Replicator, settings: SessionSettings): Promise<RateWindow> {
  await streaming(replicator, settings, "source-max", MARKER_IDS);
  settings.log(`${replicator.system}: the source's rate, ${RATE_SESSIONS} sessions unthrottled for ${settings.rateSeconds} s`);
  return rateWindow(replicator, settings, 0, undefined);
}

/** Paced at `sourceTps`, then (when that is not sustained) the bisection below it (windows 1 …). */
export async function searchSustainedRate(replicator: Replicator, settings: SessionSettings, sourceTps: number): Promise<SystemRateResult> {
  await streaming(replicator, settings, "rate-search", MARKER_IDS + 2);
  settings.log(`${replicator.system}: paced windows of ${settings.rateSeconds} s from the source's rate, ${sourceTps.toFixed(0)} tx/s`);
  const atSourceMax = await rateWindow(replicator, settings, 1, sourceTps);
  const windows = [atSourceMax];
  let good: RateWindow | undefined = atSourceMax.sustained ? atSourceMax : undefined;
  let bad = atSourceMax.sustained ? undefined : sourceTps;
  for (let step = 0; bad !== undefined && step < SEARCH_STEPS; step += 1) {
    const rate = Math.round(good?.targetTps === undefined ? bad / 2 : Math.sqrt(good.targetTps * bad));
    const window = await rateWindow(replicator, settings, 2 + step, rate);
    windows.push(window);
    if (window.sustained) good = window;
    else bad = rate;
  }
  return {
    atSourceMax,
    ...(good ? { maxSustainedTps: good.achievedTps } : {}),
    ...(bad === undefined ? {} : { lowestUnsustainedTps: bad }),
    windows,
  };
}

/** The highest peak RSS of the scenario's phases. */
export function withPeakRss(result: SystemRateResult, stats: { peakRssBytes?: number }): SystemRateResult {
  const peaks = [result.peakRssBytes, stats.peakRssBytes].filter((v): v is number => v !== undefined);
  return peaks.length === 0 ? result : { ...result, peakRssBytes: Math.max(...peaks) };
}
