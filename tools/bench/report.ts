/**
 * The bench result: one JSON document (written to bench/results/) and a markdown table of absolute
 * figures, pgferry / native ratios and the goals from issue 7 (reported, not asserted).
 */
import type { ProfileSummary } from "./cpuProfile.js";
import type { BenchEnvironment } from "./environment.js";
import type { FixtureStats } from "./fixture.js";
import type { BidirectionalResult, ReverseResult, TwoWaySystemResult } from "./reverseScenario.js";
import type { Scenario, SnapshotResult, SystemResult } from "./systemRun.js";

export interface PipeResult {
  seconds: number;
  rows: number;
  rowsPerSecond: number;
  mbPerSecond: number;
}

export interface BenchResult {
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

const MB = 1024 * 1024;

function maxRss(r: SystemResult): number | undefined {
  const values = [r.snapshot?.peakRssBytes, r.drain?.peakRssBytes, r.lag?.peakRssBytes].filter((v): v is number => v !== undefined);
  return values.length === 0 ? undefined : Math.max(...values);
}

export function evaluateGoals(pgferry: SystemResult, native: SystemResult): Goal[] {
  const goals: Goal[] = [];
  const [ps, ns] = [pgferry.snapshot, native.snapshot];
  if (ps || ns) {
    const ratio = ps && ns ? ps.seconds / ns.seconds : undefined;
    goals.push({ goal: "snapshot time ≤ 0.8 × native", measured: ratio === undefined ? "n/a" : `${ratio.toFixed(2)} × native`, met: ratio === undefined ? null : ratio <= 0.8 });
  }
  const [pd, nd] = [pgferry.drain, native.drain];
  if (pd || nd) {
    const ratio = pd && nd ? pd.changesPerSecond / nd.changesPerSecond : undefined;
    goals.push({ goal: "backlog drain ≥ 1.5 × native changes/s", measured: ratio === undefined ? "n/a" : `${ratio.toFixed(2)} × native`, met: ratio === undefined ? null : ratio >= 1.5 });
  }
  if (pgferry.lag || native.lag) {
    const p99 = pgferry.lag?.lagSeconds.p99;
    const lost = pgferry.lag ? pgferry.lag.heartbeatsSent - pgferry.lag.heartbeatsSeen : 0;
    goals.push({ goal: "steady p99 lag ≤ 1 s", measured: p99 === undefined ? "n/a" : `${p99.toFixed(3)} s${lost > 0 ? `, ${lost} heartbeats never arrived` : ""}`, met: p99 === undefined ? null : p99 <= 1 && lost === 0 });
  }
  const rss = maxRss(pgferry);
  goals.push({ goal: "pgferry peak RSS ≤ 300 MB", measured: rss === undefined ? "n/a" : `${(rss / MB).toFixed(0)} MB`, met: rss === undefined ? null : rss <= 300 * MB });
  return goals;
}

const fmt = {
  s: (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(2)} s`),
  lag: (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(3)} s`),
  n: (v: number | undefined) => (v === undefined ? "—" : Math.round(v).toLocaleString("en-US")),
  mbps: (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(1)}`),
  cpu: (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(1)} s`),
  mb: (v: number | undefined) => (v === undefined ? "—" : `${(v / MB).toFixed(0)} MB`),
};

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? "—" : a / b >= 100 ? (a / b).toFixed(0) : (a / b).toFixed(2);
}

type Row = [string, string, string, string, string];

function systemRows(p: SystemResult, n: SystemResult, pipe: PipeResult | undefined, reverse?: ReverseResult, bidirectional?: BidirectionalResult): Row[] {
  const rows: Row[] = [];
  const add = (metric: string, pv: number | undefined, nv: number | undefined, f: (v: number | undefined) => string, pipeValue = "") =>
    rows.push([metric, f(pv), f(nv), ratio(pv, nv), pipeValue]);
  if (p.snapshot || n.snapshot) {
    add("snapshot: wall time", p.snapshot?.seconds, n.snapshot?.seconds, fmt.s, fmt.s(pipe?.seconds));
    add("snapshot: rows/s", p.snapshot?.rowsPerSecond, n.snapshot?.rowsPerSecond, fmt.n, fmt.n(pipe?.rowsPerSecond));
    add("snapshot: MB/s", p.snapshot?.mbPerSecond, n.snapshot?.mbPerSecond, fmt.mbps, fmt.mbps(pipe?.mbPerSecond));
  }
  if (p.drain || n.drain) {
    add("backlog drain: wall time", p.drain?.seconds, n.drain?.seconds, fmt.s);
    add("backlog drain: changes/s", p.drain?.changesPerSecond, n.drain?.changesPerSecond, fmt.n);
    if (p.drain?.startupSeconds !== undefined) rows.push(["drain: pgferry start-up (included above)", fmt.s(p.drain.startupSeconds), "—", "", ""]);
    rows.push(["drain CPU: pgferry process", fmt.cpu(p.drain?.cpuSeconds.replicator), "—", "", ""]);
    add("drain CPU: source walsender", p.drain?.cpuSeconds.sourceBackends, n.drain?.cpuSeconds.sourceBackends, fmt.cpu);
    add("drain CPU: target apply backend", p.drain?.cpuSeconds.targetBackends, n.drain?.cpuSeconds.targetBackends, fmt.cpu);
  }
  if (reverse) {
    const [pr, nr] = [reverse.pgferry, reverse.native];
    add("reverse drain (new → old): wall time", pr?.seconds, nr?.seconds, fmt.s);
    add("reverse drain: changes/s", pr?.changesPerSecond, nr?.changesPerSecond, fmt.n);
    if (pr?.startupSeconds !== undefined) rows.push(["reverse drain: pgferry start-up (included above)", fmt.s(pr.startupSeconds), "—", "", ""]);
    rows.push(["reverse drain CPU: pgferry reverse / forward process", pr ? `${fmt.cpu(pr.cpuSeconds.replicator)} / ${fmt.cpu(pr.cpuSeconds.forwardReplicator)}` : "—", "—", "", ""]);
    add("reverse drain CPU: new-side walsender", pr?.cpuSeconds.sourceBackends, nr?.cpuSeconds.sourceBackends, fmt.cpu);
    add("reverse drain CPU: old-side apply backend", pr?.cpuSeconds.targetBackends, nr?.cpuSeconds.targetBackends, fmt.cpu);
  }
  if (p.lag || n.lag) {
    add("steady lag: p50", p.lag?.lagSeconds.p50, n.lag?.lagSeconds.p50, fmt.lag);
    add("steady lag: p99", p.lag?.lagSeconds.p99, n.lag?.lagSeconds.p99, fmt.lag);
    add("steady lag: max", p.lag?.lagSeconds.max, n.lag?.lagSeconds.max, fmt.lag);
  }
  if (bidirectional) {
    for (const [name, d] of [["old → new", bidirectional.forward], ["new → old", bidirectional.reverse]] as const) {
      const lost = d.heartbeatsSent - d.heartbeatsSeen;
      rows.push([`bidirectional lag ${name}: p50 / p99 / max${lost > 0 ? ` (${lost} heartbeats never arrived)` : ""}`, [d.lagSeconds.p50, d.lagSeconds.p99, d.lagSeconds.max].map(fmt.lag).join(" / "), "—", "", ""]);
    }
  }
  for (const phase of ["snapshot", "drain", "lag"] as const) {
    const rss = p[phase]?.peakRssBytes;
    if (rss !== undefined) rows.push([`pgferry peak RSS: ${phase}`, fmt.mb(rss), "—", "", ""]);
  }
  if (reverse?.pgferry?.peakRssBytes !== undefined) rows.push(["pgferry peak RSS: reverse drain", fmt.mb(reverse.pgferry.peakRssBytes), "—", "", ""]);
  if (bidirectional) {
    rows.push(["pgferry peak RSS: bidirectional, forward / reverse", `${fmt.mb(bidirectional.forward.peakRssBytes)} / ${fmt.mb(bidirectional.reverse.peakRssBytes)}`, "—", "", ""]);
  }
  return rows;
}

function table(header: string[], rows: string[][]): string {
  const align = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

export function markdownReport(r: BenchResult): string {
  const pipe = r.copyPipe && "seconds" in r.copyPipe ? r.copyPipe : undefined;
  const e = r.environment;
  const lines = [
    `### pgferry vs native logical replication — scale ${r.scale}`,
    "",
    `${e.cores} cores (${e.cpuModel}), ${(e.memoryBytes / 1024 ** 3).toFixed(0)} GiB RAM, ${e.os}, load average ${e.loadAverage.start} → ${e.loadAverage.end}; ` +
      `Node ${e.node}, PostgreSQL ${e.postgres}, pgvector ${e.pgvector}, pgferry ${e.pgferry} (${e.gitCommit}).`,
    `Fixture: ${fmt.n(r.fixture.rows)} rows, ${(r.fixture.bytes / MB).toFixed(0)} MB in ${Object.keys(r.fixture.tables).length} tables ` +
      `(${Object.entries(r.fixture.tables).map(([t, s]) => `${t} ${fmt.n(s.rows)}`).join(", ")}).`,
    "",
    table(["metric", "pgferry", "native", "pgferry / native", "binary COPY pipe"], systemRows(r.pgferry, r.native, pipe, r.reverse, r.bidirectional)),
  ];
  if (r.reorg) lines.push("", `pgferry with config/reorg.example.yaml: ${r.reorg.snapshot ? `snapshot ${fmt.s(r.reorg.snapshot.seconds)}` : ""}${r.reorg.note}`);
  lines.push("", table(["goal (issue 7)", "measured", "met"], r.goals.map((g) => [g.goal, g.measured, g.met === null ? "n/a" : g.met ? "yes" : "no"])));
  const problems = [r.pgferry, r.native].flatMap((s) => [
    ...(s.error ? [`${s.system} failed: ${s.error}`] : []),
    ...(s.mismatches?.length ? [`${s.system}: tables differ from the source: ${s.mismatches.join("; ")}`] : []),
  ]);
  for (const s of r.twoWay ?? []) {
    if (s.error) problems.push(`${s.system} two-way (reverse) run failed: ${s.error}`);
    if (s.mismatches?.length) problems.push(`${s.system} two-way: the old and new databases differ: ${s.mismatches.join("; ")}`);
    if (s.conflicts) problems.push(`${s.system} two-way: ${s.conflicts} conflicts recorded (the two sides write disjoint rows: none expected)`);
  }
  if (r.copyPipe && "error" in r.copyPipe) problems.push(`binary COPY pipe failed: ${r.copyPipe.error}`);
  if (problems.length > 0) lines.push("", "**Problems:**", ...problems.map((p) => `- ${p}`));
  lines.push("", ...r.notes.map((n) => `- ${n}`), `- Bench wall time ${fmt.s(r.wallSeconds)}.`);
  for (const profile of r.cpuProfiles ?? []) {
    lines.push(
      "",
      `CPU profile ${profile.file}: ${(profile.totalMs / 1000).toFixed(1)} s sampled, ${profile.idlePercent.toFixed(0)}% idle; top self time:`,
      "",
      table(["function", "location", "self ms", "self %"], profile.top.map((h) => [h.function, h.location, h.selfMs.toFixed(0), h.selfPercent.toFixed(1)])),
    );
  }
  return `${lines.join("\n")}\n`;
}
