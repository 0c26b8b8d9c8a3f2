/**
 * `--repeat n`: the runs' documents combined into one. Every number of a figure section becomes
 * `{ median, min, max, runs }` (runs in order, null where a run has none), so a result keeps its
 * shape and its spread; the headline fields stay plain numbers (the median of the per-run values,
 * each ratio taken within its run) with their summaries in `headline`.
 */
import type { ProfileSummary } from "./cpuProfile.js";
import type { BenchEnvironment } from "./environment.js";
import { evaluateGoals, HEADLINE_KEYS, problems, type BenchResult, type Goal, type Headline } from "./report.js";
import { summarize, type Summary } from "./stats.js";

export interface RunRecord {
  startedAt: string;
  wallSeconds: number;
  loadAverage: BenchEnvironment["loadAverage"];
  goals: Goal[];
  problems: string[];
}

export interface RepeatedBenchResult extends Headline {
  startedAt: string;
  wallSeconds: number;
  repeat: number;
  scale: number;
  scenarios: BenchResult["scenarios"];
  /** The first run's; `loadAverage` is summarised over the runs. */
  environment: Omit<BenchEnvironment, "loadAverage"> & { loadAverage: unknown };
  settings: BenchResult["settings"];
  /** Each headline figure over the runs. */
  headline: Partial<Record<(typeof HEADLINE_KEYS)[number], Summary>>;
  /** The figure sections of BenchResult, every number summarised (see mergeRuns). */
  fixture: unknown;
  copyPipe?: unknown;
  pgferry: unknown;
  native: unknown;
  maxRate?: unknown;
  reorg?: unknown;
  reverse?: unknown;
  bidirectional?: unknown;
  twoWay?: unknown;
  /** Judged on the median of the per-run ratios (peak RSS: on the highest run). */
  goals: Goal[];
  cpuProfiles?: ProfileSummary[];
  notes: string[];
  runs: RunRecord[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * One value per run (undefined where a run has none) merged into one: numbers into a Summary,
 * objects key by key, arrays of objects of one length element by element; anything else is kept
 * when every run agrees and listed per run (null where missing) when not.
 */
export function mergeRuns(values: readonly unknown[]): unknown {
  const present = values.filter((v) => v !== undefined);
  if (present.length === 0) return undefined;
  if (present.every((v) => typeof v === "number")) return summarize(values as readonly (number | undefined)[]);
  if (present.every(isRecord)) {
    const keys = [...new Set(present.flatMap((v) => Object.keys(v)))];
    const entries = keys.map((k) => [k, mergeRuns(values.map((v) => (isRecord(v) ? v[k] : undefined)))] as const);
    return Object.fromEntries(entries.filter(([, v]) => v !== undefined));
  }
  const arrays = present.filter((v): v is unknown[] => Array.isArray(v));
  const length = arrays[0]?.length;
  if (arrays.length === values.length && arrays.every((a) => a.length === length && a.every(isRecord))) {
    return arrays[0]!.map((_, i) => mergeRuns(arrays.map((a) => a[i])));
  }
  const same = present.length === values.length && present.every((v) => JSON.stringify(v) === JSON.stringify(present[0]));
  return same ? present[0] : values.map((v) => v ?? null);
}

function merged<K extends keyof BenchResult>(runs: readonly BenchResult[], key: K): { [P in K]?: unknown } {
  const value = mergeRuns(runs.map((r) => r[key]));
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: unknown };
}

export function combineRuns(runs: readonly BenchResult[], wallSeconds: number): RepeatedBenchResult {
  const first = runs[0]!;
  const headline: RepeatedBenchResult["headline"] = {};
  const medians: Headline = {};
  for (const key of HEADLINE_KEYS) {
    const s = summarize(runs.map((r) => r[key]));
    if (s === undefined) continue;
    headline[key] = s;
    medians[key] = s.median;
  }
  const cpuProfiles = runs.flatMap((r) => r.cpuProfiles ?? []);
  return {
    startedAt: first.startedAt,
    wallSeconds,
    repeat: runs.length,
    scale: first.scale,
    scenarios: first.scenarios,
    ...medians,
    headline,
    environment: { ...first.environment, loadAverage: mergeRuns(runs.map((r) => r.environment.loadAverage)) },
    settings: first.settings,
    fixture: mergeRuns(runs.map((r) => r.fixture)),
    ...merged(runs, "copyPipe"),
    pgferry: mergeRuns(runs.map((r) => r.pgferry)),
    native: mergeRuns(runs.map((r) => r.native)),
    ...merged(runs, "maxRate"),
    ...merged(runs, "reorg"),
    ...merged(runs, "reverse"),
    ...merged(runs, "bidirectional"),
    ...merged(runs, "twoWay"),
    goals: evaluateGoals(runs),
    ...(cpuProfiles.length > 0 ? { cpuProfiles } : {}),
    notes: [
      `${runs.length} runs, each on fresh clusters and databases; every figure is { median, min, max, runs } over the runs; ` +
        `the headline ratios are taken within each run, then summarised (headline.*).`,
      ...first.notes,
    ],
    runs: runs.map((r) => ({ startedAt: r.startedAt, wallSeconds: r.wallSeconds, loadAverage: r.environment.loadAverage, goals: r.goals, problems: problems(r) })),
  };
}
