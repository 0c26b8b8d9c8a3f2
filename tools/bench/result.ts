/**
 * The shape of one bench run's result (report.ts builds and prints it, repeatedResult.ts combines
 * several, the scenarios fill it): types only, so every part can name them without a loop.
 */
import type { ProfileSummary } from "./cpuProfile.js";
import type { MaxRateSummary } from "./rateSearch.js";
import type { BenchEnvironment } from "./environment.js";
import type { FixtureStats } from "./fixture.js";
import type { BidirectionalResult, ReverseResult, TwoWaySystemResult } from "./reverseScenario.js";
import type { PipeResult } from "./scenarios.js";
import type { Scenario } from "./session.js";
import type { SnapshotResult, SystemResult } from "./systemRun.js";

/**
 * The figures a reader looks at first, as plain numbers: ratios are pgferry / native within the run
 * (in a combined document, the median of the per-run values).
 */
export interface Headline {
  /** pgferry / native snapshot seconds (below 1: pgferry is faster). */
  snapshotRatio?: number;
  /** pgferry / native backlog drain changes/s (above 1: pgferry is faster). */
  drainRatio?: number;
  /** pgferry / native reverse (new → old) drain changes/s. */
  reverseDrainRatio?: number;
  /** p99 lag of each direction with both running (pgferry only), milliseconds. */
  bidirectionalForwardLagP99Ms?: number;
  bidirectionalReverseLagP99Ms?: number;
}

export const HEADLINE_KEYS = ["snapshotRatio", "drainRatio", "reverseDrainRatio", "bidirectionalForwardLagP99Ms", "bidirectionalReverseLagP99Ms"] as const satisfies readonly (keyof Headline)[];

export interface BenchResult extends Headline {
  startedAt: string;
  wallSeconds: number;
  scale: number;
  scenarios: Scenario[];
  environment: BenchEnvironment;
  fixture: FixtureStats & { generateSeconds: number };
  settings: Record<string, string | number | boolean>;
  copyPipe?: PipeResult | { error: string };
  pgferry: SystemResult;
  native: SystemResult;
  /** The maxrate scenario's figures (each system's detail is under pgferry.maxRate, native.maxRate). */
  maxRate?: MaxRateSummary;
  reorg?: { snapshot?: SnapshotResult; note: string };
  /** The reverse pipeline's drain (new → old) beside native replication in that direction. */
  reverse?: ReverseResult;
  /** Lag of each direction with both running and both sides taking writes (pgferry only). */
  bidirectional?: BidirectionalResult;
  /** Each system's two-way run: errors, final comparison of the two databases, conflicts. */
  twoWay?: TwoWaySystemResult[];
  goals: Goal[];
  cpuProfiles?: ProfileSummary[];
  notes: string[];
}

export interface Goal {
  goal: string;
  measured: string;
  met: boolean | null;
}
