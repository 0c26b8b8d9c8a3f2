/**
 * The bench result: one JSON document per run (written to bench/results/; several runs are combined
 * in repeatedResult.ts) and a markdown table of absolute figures, pgferry / native ratios and the
 * goals from issue 7 (reported, not asserted), over one run or several (reportRows.ts).
 */
import type { BidirectionalResult, ReverseResult } from "./reverseScenario.js";
import type { BenchResult, Goal, Headline } from "./result.js";
import { FORMATS, perRunRatios, summaryText, tableRows } from "./reportRows.js";
import { summarize } from "./stats.js";
import type { SystemResult } from "./systemRun.js";

export type { BenchResult, Goal, Headline } from "./result.js";
export { HEADLINE_KEYS } from "./result.js";

const MB = 1024 * 1024;

type Pair = Pick<BenchResult, "pgferry" | "native">;

export function headline(pgferry: SystemResult, native: SystemResult, reverse?: ReverseResult, bidirectional?: BidirectionalResult): Headline {
  const [ps, ns, pd, nd] = [pgferry.snapshot?.seconds, native.snapshot?.seconds, pgferry.drain?.changesPerSecond, native.drain?.changesPerSecond];
  return {
    ...(ps !== undefined && ns ? { snapshotRatio: ps / ns } : {}),
    ...(pd !== undefined && nd ? { drainRatio: pd / nd } : {}),
    ...(reverse?.reverseDrainRatio === undefined ? {} : { reverseDrainRatio: reverse.reverseDrainRatio }),
    ...(bidirectional ? { bidirectionalForwardLagP99Ms: bidirectional.forwardLagP99Ms, bidirectionalReverseLagP99Ms: bidirectional.reverseLagP99Ms } : {}),
  };
}

function maxRss(r: SystemResult): number | undefined {
  const values = [r.snapshot?.peakRssBytes, r.drain?.peakRssBytes, r.lag?.peakRssBytes, r.maxRate?.peakRssBytes].filter((v): v is number => v !== undefined);
  return values.length === 0 ? undefined : Math.max(...values);
}

/**
 * The goals of issue 7 over one run or several: ratios are taken within each run and judged by
 * their median; peak RSS by the highest run (a peak is a bound).
 */
export function evaluateGoals(runs: readonly Pair[]): Goal[] {
  const goals: Goal[] = [];
  const many = runs.length > 1 ? `, median of ${runs.length} runs` : "";
  const judged = (perRun: (number | undefined)[], suffix: string, ok: (median: number) => boolean): Pick<Goal, "measured" | "met"> => {
    const s = summarize(perRun);
    return s ? { measured: `${summaryText(perRun, FORMATS.ratio)}${suffix}${many}`, met: ok(s.median) } : { measured: "n/a", met: null };
  };
  if (runs.some((r) => r.pgferry.snapshot ?? r.native.snapshot)) {
    const ratios = perRunRatios(runs, (r) => r.pgferry.snapshot?.seconds, (r) => r.native.snapshot?.seconds);
    goals.push({ goal: "snapshot time ≤ 0.8 × native", ...judged(ratios, " × native", (m) => m <= 0.8) });
  }
  if (runs.some((r) => r.pgferry.drain ?? r.native.drain)) {
    const ratios = perRunRatios(runs, (r) => r.pgferry.drain?.changesPerSecond, (r) => r.native.drain?.changesPerSecond);
    goals.push({ goal: "backlog drain ≥ 1.5 × native changes/s", ...judged(ratios, " × native", (m) => m >= 1.5) });
  }
  if (runs.some((r) => r.pgferry.lag ?? r.native.lag)) {
    const p99 = runs.map((r) => r.pgferry.lag?.lagSeconds.p99);
    const lost = runs.reduce((sum, r) => sum + (r.pgferry.lag ? r.pgferry.lag.heartbeatsSent - r.pgferry.lag.heartbeatsSeen : 0), 0);
    const s = summarize(p99);
    goals.push({
      goal: "steady p99 lag ≤ 1 s",
      measured: s ? `${summaryText(p99, FORMATS.lag)}${many}${lost > 0 ? `, ${lost} heartbeats never arrived` : ""}` : "n/a",
      met: s ? s.median <= 1 && lost === 0 : null,
    });
  }
  if (runs.some((r) => r.pgferry.maxRate?.atSourceMax)) {
    const p99 = runs.map((r) => r.pgferry.maxRate?.atSourceMax?.lagSeconds.p99);
    const behind = runs.filter((r) => r.pgferry.maxRate?.atSourceMax?.keptUp === false).length;
    const s = summarize(p99);
    goals.push({
      goal: "steady p99 lag ≤ 100 ms at the source's max rate (issue 15)",
      measured: s ? `${summaryText(p99, FORMATS.lag)}${many}${behind > 0 ? `, fell behind in ${behind} of ${runs.length} runs` : ""}` : "n/a",
      met: s ? s.median <= 0.1 && behind === 0 : null,
    });
  }
  const rss = runs.map((r) => maxRss(r.pgferry));
  const peak = summarize(rss);
  goals.push({
    goal: "pgferry peak RSS ≤ 300 MB",
    measured: peak ? `${summaryText(rss, FORMATS.mb)}${runs.length > 1 ? `, highest of ${runs.length} runs ${FORMATS.mb.num(peak.max)} MB` : ""}` : "n/a",
    met: peak ? peak.max <= 300 * MB : null,
  });
  return goals;
}

/** What went wrong in a run (failed systems, tables that differ), one line each. */
export function problems(r: BenchResult): string[] {
  const lines = [r.pgferry, r.native].flatMap((s) => [
    ...(s.error ? [`${s.system} failed: ${s.error}`] : []),
    ...(s.mismatches?.length ? [`${s.system}: tables differ from the source: ${s.mismatches.join("; ")}`] : []),
  ]);
  for (const s of r.twoWay ?? []) {
    if (s.error) lines.push(`${s.system} two-way (reverse) run failed: ${s.error}`);
    if (s.mismatches?.length) lines.push(`${s.system} two-way: the old and new databases differ: ${s.mismatches.join("; ")}`);
    if (s.conflicts) lines.push(`${s.system} two-way: ${s.conflicts} conflicts recorded (the two sides write disjoint rows: none expected)`);
  }
  if (r.copyPipe && "error" in r.copyPipe) lines.push(`binary COPY pipe failed: ${r.copyPipe.error}`);
  return lines;
}

/** A run that must fail the bench: a system failed or its tables differ at the end. */
export function failed(r: BenchResult): boolean {
  return [r.pgferry, r.native, ...(r.twoWay ?? [])].some((s) => s.error !== undefined || (s.mismatches?.length ?? 0) > 0);
}

function table(header: string[], rows: string[][]): string {
  const align = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** The markdown report of one run, or of several runs (figures as median (min–max)). */
export function markdownReport(runs: readonly BenchResult[], wallSeconds = runs.reduce((sum, r) => sum + r.wallSeconds, 0)): string {
  const first = runs[0]!;
  const e = first.environment;
  const count = runs.length;
  const load = runs.map((r) => `${r.environment.loadAverage.start} → ${r.environment.loadAverage.end}`).join(", ");
  const lines = [
    `### pgferry vs native logical replication — scale ${first.scale}${count > 1 ? `, ${count} runs (median (min–max))` : ""}`,
    "",
    `${e.cores} cores (${e.cpuModel}), ${(e.memoryBytes / 1024 ** 3).toFixed(0)} GiB RAM, ${e.os}, load average ${count > 1 ? `per run ${load}` : load}; ` +
      `Node ${e.node}, PostgreSQL ${e.postgres}, pgvector ${e.pgvector}, pgferry ${e.pgferry} (${e.gitCommit}).`,
    `Fixture: ${FORMATS.n.num(first.fixture.rows)} rows, ${(first.fixture.bytes / MB).toFixed(0)} MB in ${Object.keys(first.fixture.tables).length} tables ` +
      `(${Object.entries(first.fixture.tables).map(([t, s]) => `${t} ${FORMATS.n.num(s.rows)}`).join(", ")}).`,
    "",
    table(["metric", "pgferry", "native", "pgferry / native", "binary COPY pipe"], tableRows(runs)),
  ];
  if (runs.some((r) => r.reorg)) {
    const snapshot = summaryText(runs.map((r) => r.reorg?.snapshot?.seconds), FORMATS.s);
    lines.push("", `pgferry with config/reorg.example.yaml: ${snapshot === "—" ? "" : `snapshot ${snapshot}`}${count > 1 ? "; run 1" : ""}${first.reorg?.note ?? ""}`);
  }
  lines.push("", table(["goal (issue 7)", "measured", "met"], evaluateGoals(runs).map((g) => [g.goal, g.measured, g.met === null ? "n/a" : g.met ? "yes" : "no"])));
  const issues = runs.flatMap((r, i) => problems(r).map((p) => (count > 1 ? `run ${i + 1}: ${p}` : p)));
  if (issues.length > 0) lines.push("", "**Problems:**", ...issues.map((p) => `- ${p}`));
  const repeatNote = count > 1 ? [`${count} runs, each on fresh clusters and databases; every figure is the median (min–max) over the runs, each ratio the median (min–max) of the ratios taken within each run.`] : [];
  lines.push("", ...[...repeatNote, ...first.notes].map((n) => `- ${n}`), `- Bench wall time ${FORMATS.s.num(wallSeconds)} s.`);
  for (const profile of runs.flatMap((r) => r.cpuProfiles ?? [])) {
    lines.push(
      "",
      `CPU profile ${profile.file}: ${(profile.totalMs / 1000).toFixed(1)} s sampled, ${profile.idlePercent.toFixed(0)}% idle; top self time:`,
      "",
      table(["function", "location", "self ms", "self %"], profile.top.map((h) => [h.function, h.location, h.selfMs.toFixed(0), h.selfPercent.toFixed(1)])),
    );
  }
  return `${lines.join("\n")}\n`;
}
