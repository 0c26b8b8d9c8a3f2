/**
 * The rows of the bench's markdown table, over one run or several: each figure is read from every
 * run and shown as its value (one run) or its median (min–max); the pgferry / native column is the
 * ratio taken within each run, then summarised the same way, never a ratio of medians.
 */
import type { BenchResult } from "./result.js";
import type { PipeResult } from "./scenarios.js";
import { summarize } from "./stats.js";

/** One figure of one run; undefined when that run has none (scenario not run, or failed). */
type Get = (r: BenchResult) => number | undefined;

interface Format {
  num: (v: number) => string;
  unit: string;
}

const MB = 1024 * 1024;

export const FORMATS = {
  s: { num: (v: number) => v.toFixed(2), unit: " s" },
  lag: { num: (v: number) => v.toFixed(3), unit: " s" },
  n: { num: (v: number) => Math.round(v).toLocaleString("en-US"), unit: "" },
  mbps: { num: (v: number) => v.toFixed(1), unit: "" },
  cpu: { num: (v: number) => v.toFixed(1), unit: " s" },
  mb: { num: (v: number) => (v / MB).toFixed(0), unit: " MB" },
  ratio: { num: (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2)), unit: "" },
} satisfies Record<string, Format>;

/** `2.94 s` for one run; `2.94 s (2.91–3.48)` for several, `[2 of 3 runs]` when some have no value. */
export function summaryText(perRun: readonly (number | undefined)[], f: Format): string {
  const s = summarize(perRun);
  if (!s) return "—";
  const text = `${f.num(s.median)}${f.unit}`;
  if (perRun.length === 1) return text;
  const present = s.runs.filter((v) => v !== null).length;
  return `${text} (${f.num(s.min)}–${f.num(s.max)})${present < perRun.length ? ` [${present} of ${perRun.length} runs]` : ""}`;
}

/** pgferry / native of each run. */
export function perRunRatios<R>(runs: readonly R[], p: (r: R) => number | undefined, n: (r: R) => number | undefined): (number | undefined)[] {
  return runs.map((r) => {
    const [pv, nv] = [p(r), n(r)];
    return pv === undefined || nv === undefined || nv === 0 ? undefined : pv / nv;
  });
}

type Row = [string, string, string, string, string];

function pipeOf(r: BenchResult): PipeResult | undefined {
  return r.copyPipe && "seconds" in r.copyPipe ? r.copyPipe : undefined;
}

export function tableRows(runs: readonly BenchResult[]): Row[] {
  const rows: Row[] = [];
  const cell = (get: Get | undefined, f: Format) => (get ? summaryText(runs.map(get), f) : "—");
  /** A figure of both systems, with their ratio; `pipe`: the COPY pipe's figure. */
  const both = (metric: string, p: Get, n: Get, f: Format, pipe?: Get) =>
    rows.push([metric, cell(p, f), cell(n, f), summaryText(perRunRatios(runs, p, n), FORMATS.ratio), pipe ? cell(pipe, f) : ""]);
  /** Figures without a ratio (pgferry only, or not comparable), several joined by " / ". */
  const plain = (metric: string, p: Get[], f: Format, n?: Get) => rows.push([metric, p.map((g) => cell(g, f)).join(" / "), cell(n, f), "", ""]);
  const any = (has: (r: BenchResult) => unknown) => runs.some((r) => has(r) !== undefined);

  if (any((r) => r.pgferry.snapshot ?? r.native.snapshot)) {
    both("snapshot: wall time", (r) => r.pgferry.snapshot?.seconds, (r) => r.native.snapshot?.seconds, FORMATS.s, (r) => pipeOf(r)?.seconds);
    both("snapshot: rows/s", (r) => r.pgferry.snapshot?.rowsPerSecond, (r) => r.native.snapshot?.rowsPerSecond, FORMATS.n, (r) => pipeOf(r)?.rowsPerSecond);
    both("snapshot: MB/s", (r) => r.pgferry.snapshot?.mbPerSecond, (r) => r.native.snapshot?.mbPerSecond, FORMATS.mbps, (r) => pipeOf(r)?.mbPerSecond);
  }
  if (any((r) => r.pgferry.drain ?? r.native.drain)) {
    both("backlog drain: wall time", (r) => r.pgferry.drain?.seconds, (r) => r.native.drain?.seconds, FORMATS.s);
    both("backlog drain: changes/s", (r) => r.pgferry.drain?.changesPerSecond, (r) => r.native.drain?.changesPerSecond, FORMATS.n);
    plain("drain: until streaming (included above)", [(r) => r.pgferry.drain?.startupSeconds], FORMATS.s, (r) => r.native.drain?.startupSeconds);
    plain("drain: until the first change is applied (included above)", [(r) => r.pgferry.drain?.firstChangeSeconds], FORMATS.s, (r) => r.native.drain?.firstChangeSeconds);
    plain("drain CPU: pgferry process", [(r) => r.pgferry.drain?.cpuSeconds.replicator], FORMATS.cpu);
    both("drain CPU: source walsender", (r) => r.pgferry.drain?.cpuSeconds.sourceBackends, (r) => r.native.drain?.cpuSeconds.sourceBackends, FORMATS.cpu);
    both("drain CPU: target apply backend", (r) => r.pgferry.drain?.cpuSeconds.targetBackends, (r) => r.native.drain?.cpuSeconds.targetBackends, FORMATS.cpu);
  }
  if (any((r) => r.reverse)) {
    both("reverse drain (new → old): wall time", (r) => r.reverse?.pgferry?.seconds, (r) => r.reverse?.native?.seconds, FORMATS.s);
    both("reverse drain: changes/s", (r) => r.reverse?.pgferry?.changesPerSecond, (r) => r.reverse?.native?.changesPerSecond, FORMATS.n);
    plain("reverse drain: until streaming (included above)", [(r) => r.reverse?.pgferry?.startupSeconds], FORMATS.s, (r) => r.reverse?.native?.startupSeconds);
    plain("reverse drain: until the first change is applied (included above)", [(r) => r.reverse?.pgferry?.firstChangeSeconds], FORMATS.s, (r) => r.reverse?.native?.firstChangeSeconds);
    plain("reverse drain CPU: pgferry reverse / forward process", [(r) => r.reverse?.pgferry?.cpuSeconds.replicator, (r) => r.reverse?.pgferry?.cpuSeconds.forwardReplicator], FORMATS.cpu);
    both("reverse drain CPU: new-side walsender", (r) => r.reverse?.pgferry?.cpuSeconds.sourceBackends, (r) => r.reverse?.native?.cpuSeconds.sourceBackends, FORMATS.cpu);
    both("reverse drain CPU: old-side apply backend", (r) => r.reverse?.pgferry?.cpuSeconds.targetBackends, (r) => r.reverse?.native?.cpuSeconds.targetBackends, FORMATS.cpu);
  }
  if (any((r) => r.pgferry.lag ?? r.native.lag)) {
    both("steady lag: p50", (r) => r.pgferry.lag?.lagSeconds.p50, (r) => r.native.lag?.lagSeconds.p50, FORMATS.lag);
    both("steady lag: p99", (r) => r.pgferry.lag?.lagSeconds.p99, (r) => r.native.lag?.lagSeconds.p99, FORMATS.lag);
    both("steady lag: max", (r) => r.pgferry.lag?.lagSeconds.max, (r) => r.native.lag?.lagSeconds.max, FORMATS.lag);
  }
  if (any((r) => r.maxRate)) {
    const at = (r: BenchResult, system: "pgferry" | "native") => r[system].maxRate?.atSourceMax;
    plain("max rate: the source's tx/s, writers unthrottled, each system replicating", [(r) => r.maxRate?.sourceTpsWith.pgferry], FORMATS.n, (r) => r.maxRate?.sourceTpsWith.native);
    both("max rate: paced at the lower of those, tx/s achieved", (r) => at(r, "pgferry")?.achievedTps, (r) => at(r, "native")?.achievedTps, FORMATS.n);
    both("max rate: lag at that rate: p50", (r) => at(r, "pgferry")?.lagSeconds.p50, (r) => at(r, "native")?.lagSeconds.p50, FORMATS.lag);
    both("max rate: lag at that rate: p99", (r) => at(r, "pgferry")?.lagSeconds.p99, (r) => at(r, "native")?.lagSeconds.p99, FORMATS.lag);
    plain("max rate: lag growth at that rate (last − first quarter)", [(r) => at(r, "pgferry")?.lagGrowthSeconds], FORMATS.lag, (r) => at(r, "native")?.lagGrowthSeconds);
    both("max rate: highest tx/s with p99 ≤ 100 ms, lag not growing", (r) => r.maxRate?.pgferryTps, (r) => r.maxRate?.nativeTps, FORMATS.n);
    plain("max rate: lowest paced tx/s not sustained (— : none)", [(r) => r.pgferry.maxRate?.lowestUnsustainedTps], FORMATS.n, (r) => r.native.maxRate?.lowestUnsustainedTps);
  }
  if (any((r) => r.bidirectional)) {
    for (const [name, direction] of [["old → new", "forward"], ["new → old", "reverse"]] as const) {
      const lost = runs.reduce((sum, r) => sum + (r.bidirectional ? r.bidirectional[direction].heartbeatsSent - r.bidirectional[direction].heartbeatsSeen : 0), 0);
      const lag = (pick: "p50" | "p99" | "max"): Get => (r) => r.bidirectional?.[direction].lagSeconds[pick];
      plain(`bidirectional lag ${name}: p50 / p99 / max${lost > 0 ? ` (${lost} heartbeats never arrived)` : ""}`, [lag("p50"), lag("p99"), lag("max")], FORMATS.lag);
    }
  }
  for (const phase of ["snapshot", "drain", "lag", "maxRate"] as const) {
    if (any((r) => r.pgferry[phase]?.peakRssBytes)) plain(`pgferry peak RSS: ${phase}`, [(r) => r.pgferry[phase]?.peakRssBytes], FORMATS.mb);
  }
  if (any((r) => r.reverse?.pgferry?.peakRssBytes)) plain("pgferry peak RSS: reverse drain", [(r) => r.reverse?.pgferry?.peakRssBytes], FORMATS.mb);
  if (any((r) => r.bidirectional)) {
    plain("pgferry peak RSS: bidirectional, forward / reverse", [(r) => r.bidirectional?.forward.peakRssBytes, (r) => r.bidirectional?.reverse.peakRssBytes], FORMATS.mb);
  }
  return rows;
}
