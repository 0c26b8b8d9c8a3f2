/**
 * What operators see of conflicts without a database: the counter a batch's conflicts increase (with
 * the pipeline's direction), the monitor's counts since start and the status page's Conflicts
 * section, and `pgferry conflicts`' argument checks (exit 2 with its usage line, before anything is
 * read) and `--since` parsing.
 */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ConflictCount } from "../../src/apply/conflictGuard.js";
import { parseSince } from "../../src/cli/commands/conflicts.js";
import { main } from "../../src/cli/main.js";
import { PipelineMetrics } from "../../src/control/metrics.js";
import { PipelineMonitor } from "../../src/control/pipelineMonitor.js";
import { renderStatusPage } from "../../src/control/statusPage.js";
import type { AppliedBatch } from "../../src/pipeline/applyLoop.js";

const T0 = Date.parse("2026-11-20T10:00:00Z");

function batch(endLsn: bigint, conflicts?: ConflictCount[]): AppliedBatch {
  return {
    transactions: 1, changes: 3, perTable: new Map([["public.accounts", { update: 3 }]]), seconds: 0.01,
    checkpoint: { commitLsn: endLsn - 8n, endLsn, commitTime: new Date(T0) }, conflicts,
  };
}

async function series(metrics: PipelineMetrics, name: string): Promise<{ labels: object; value: number }[]> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values.map((v) => ({ labels: v.labels, value: v.value }));
}

describe("pgferry_conflicts_total", () => {
  it("counts a batch's conflicts by table, the pipeline's direction, the resolution and the side kept", async () => {
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30 });
    const metrics = new PipelineMetrics({ monitor, processMetrics: false, direction: "reverse" });
    metrics.batchApplied(batch(100n));
    expect(await series(metrics, "pgferry_conflicts_total")).toEqual([]);
    const conflicts: ConflictCount[] = [
      { table: "public.accounts", resolution: "prefer-new", kept: "local", count: 2 },
      { table: "public.accounts", resolution: "prefer-new", kept: "incoming", count: 1 },
      { table: "public.items", resolution: "prefer-new", kept: "local", count: 0 },
    ];
    metrics.batchApplied(batch(200n, conflicts));
    metrics.batchApplied(batch(300n, conflicts.slice(0, 1)));
    expect(await series(metrics, "pgferry_conflicts_total")).toEqual([
      { labels: { table: "public.accounts", direction: "reverse", resolution: "prefer-new", kept: "local" }, value: 4 },
      { labels: { table: "public.accounts", direction: "reverse", resolution: "prefer-new", kept: "incoming" }, value: 1 },
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('pgferry_conflicts_total{table="public.accounts",direction="reverse",resolution="prefer-new",kept="local"} 4');
  });

  it("labels a pipeline's conflicts forward unless told its direction", async () => {
    const metrics = new PipelineMetrics({ monitor: new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30 }), processMetrics: false });
    metrics.batchApplied(batch(100n, [{ table: "public.items", resolution: "last-writer-wins", kept: "incoming", count: 3 }]));
    expect(await series(metrics, "pgferry_conflicts_total")).toEqual([
      { labels: { table: "public.items", direction: "forward", resolution: "last-writer-wins", kept: "incoming" }, value: 3 },
    ]);
  });
});

describe("conflicts on the status", () => {
  it("counts since start per table, resolution and side kept, in table order", () => {
    let now = T0;
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30, now: () => now });
    expect(monitor.status().conflicts).toEqual({ since: "2026-11-20T10:00:00.000Z", total: 0, byTable: [] });
    now += 60_000;
    monitor.batchApplied(batch(100n, [
      { table: "public.items", resolution: "last-writer-wins", kept: "local", count: 1 },
      { table: "public.accounts", resolution: "last-writer-wins", kept: "local", count: 2 },
    ]));
    monitor.batchApplied(batch(200n, [{ table: "public.accounts", resolution: "last-writer-wins", kept: "incoming", count: 5 }]));
    monitor.batchApplied(batch(300n, [{ table: "public.accounts", resolution: "last-writer-wins", kept: "local", count: 1 }]));
    expect(monitor.status().conflicts).toEqual({
      since: "2026-11-20T10:00:00.000Z",
      total: 9,
      byTable: [
        { table: "public.accounts", resolution: "last-writer-wins", kept: "incoming", count: 5 },
        { table: "public.accounts", resolution: "last-writer-wins", kept: "local", count: 3 },
        { table: "public.items", resolution: "last-writer-wins", kept: "local", count: 1 },
      ],
    });
  });

  it("shows them on the status page, escaped, and says none when there are none", () => {
    const monitor = new PipelineMonitor({ slot: "s", readyMaxLagSeconds: 30 });
    const none = renderStatusPage(monitor.status(), "n0nce");
    expect(none).toMatch(/<tbody id="conflicts">\n<tr><td colspan="4" class="none">none<\/td><\/tr>\n<\/tbody>/);
    expect(none).toContain('<span id="conflicts-total">0</span>');
    monitor.batchApplied(batch(100n, [{ table: 'public."<b>"', resolution: "prefer-old", kept: "local", count: 7 }]));
    const page = renderStatusPage(monitor.status(), "n0nce");
    expect(page).toContain('<tr><td class="name">public.&quot;&lt;b&gt;&quot;</td><td>prefer-old</td><td class="kept kept-local">local</td><td class="num">7</td></tr>');
    expect(page).toContain('<span id="conflicts-total">7</span>');
    expect(page).not.toContain("<b>");
  });
});

describe("pgferry conflicts arguments", () => {
  it("--since takes a duration back from now or an ISO 8601 time", () => {
    expect(parseSince("90s", T0)).toEqual(new Date(T0 - 90_000));
    expect(parseSince("15m", T0)).toEqual(new Date(T0 - 900_000));
    expect(parseSince("1h", T0)).toEqual(new Date(T0 - 3_600_000));
    expect(parseSince("2d", T0)).toEqual(new Date(T0 - 2 * 86_400_000));
    expect(parseSince("1w", T0)).toEqual(new Date(T0 - 7 * 86_400_000));
    expect(parseSince("2026-01-31T12:00Z", T0)).toEqual(new Date("2026-01-31T12:00:00Z"));
    expect(parseSince("2026-01-31T12:00:05.5+02:00", T0)).toEqual(new Date("2026-01-31T10:00:05.500Z"));
    expect(parseSince("2026-01-31", T0)).toEqual(new Date("2026-01-31T00:00:00Z"));
    for (const bad of ["1 h", "h", "-1h", "1y", "yesterday", "2026-13-45", "31/01/2026", ""]) expect(parseSince(bad, T0), bad).toBeUndefined();
  });

  async function cli(...argv: string[]): Promise<{ code: number; stderr: string }> {
    let stderr = "";
    const sink = new Writable({ write(chunk: Buffer, _encoding, done) { stderr += chunk.toString("utf8"); done(); } });
    const code = await main(argv, { stdout: new Writable({ write: (_c, _e, done) => done() }), stderr: sink, env: {} });
    return { code, stderr };
  }

  it.each([
    [["conflicts", "--since", "yesterday"], "pgferry conflicts: --since takes a duration (90s, 15m, 1h, 2d, 1w) or an ISO 8601 time (2026-01-31T12:00Z), not 'yesterday'\nusage: pgferry conflicts [--config pgferry.yaml]"],
    [["conflicts", "--direction", "both"], "pgferry conflicts: --direction takes forward or reverse, not 'both'\n"],
    [["conflicts", "--limit", "0"], "pgferry conflicts: --limit takes a whole number of conflicts to list (1 or more), not '0'\n"],
    [["conflicts", "--limit", "ten"], "pgferry conflicts: --limit takes a whole number of conflicts to list (1 or more), not 'ten'\n"],
    [["conflicts", "public.accounts"], "pgferry conflicts: unexpected argument 'public.accounts'\n"],
    [["conflicts", "--json=yes"], "pgferry conflicts: option --json takes no value\n"],
    [["conflicts", "--tabel", "x"], "pgferry conflicts: unknown option --tabel (did you mean --table?)\n"],
  ])("%j exits 2 with the usage line", async (argv, expected) => {
    const { code, stderr } = await cli(...argv);
    expect(code).toBe(2);
    expect(stderr).toContain(expected);
    expect(stderr).toContain("usage: pgferry conflicts");
  });
});
