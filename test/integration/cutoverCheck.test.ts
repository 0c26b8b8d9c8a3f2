/**
 * `pgferry cutover --check` (src/cutover/readiness.ts) on real databases, in-process through the
 * CLI's own argument handling: each readiness item that is not ready makes the check exit 1 with its
 * own message and hint, and with the forward pipeline streaming, sequences moved past the old side's
 * keys (setval here) and a verify recorded by `pgferry verify`, every item is ready and it exits 0.
 * The daemon's status poller judges the same items (pgferry_ready{check}), and the
 * PgferryNotReadyDuringCutover alert fires as its rule says (promtool). The tests run in order: each
 * starts from the state the previous one left.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { main } from "../../src/cli/main.js";
import { oppositeOf } from "../../src/config/directions.js";
import { loadConfig } from "../../src/config/index.js";
import { PipelineMetrics } from "../../src/control/metrics.js";
import { PipelineMonitor, sourceTargets } from "../../src/control/pipelineMonitor.js";
import { StatusPoller } from "../../src/control/statusPoller.js";
import { readinessLimits } from "../../src/cutover/readinessItems.js";
import type { ReadinessItem, ReadinessItemName } from "../../src/cutover/types.js";
import { capturingLogger, streaming } from "../harness/pipelineRunner.js";
import { configText, writeConfigFile } from "../harness/processRunner.js";
import { useTestPair } from "../harness/testPair.js";
import { waitFor } from "../harness/waitFor.js";

const ROOT = resolve(import.meta.dirname, "../..");
const TABLES = [
  { from: "public.orders", to: "shop.orders" },
  { from: "public.items", to: "shop.items" },
];

const pair = useTestPair("cutover_check", async (db) => {
  await db.source.query(`
    CREATE TABLE public.orders (id serial PRIMARY KEY, note text NOT NULL);
    CREATE TABLE public.items (id int PRIMARY KEY, name text);
    INSERT INTO public.orders (note) SELECT 'order ' || g FROM generate_series(1, 50) AS g;
    INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 20) AS g;`);
  await db.target.query(`
    CREATE SCHEMA shop;
    CREATE TABLE shop.orders (id serial PRIMARY KEY, note text NOT NULL);
    CREATE TABLE shop.items (id int PRIMARY KEY, name text);`);
});

const config = () => pair.config({ tables: TABLES });
/** With the pipeline stopped the lag item waits up to the limit for it: 1 s keeps those checks short. */
const QUICK = "cutover:\n  maxLagSeconds: 1\n";
const slot = () => config().source.slot;
const env = () => ({ SOURCE_URL: pair.db.sourceUrl, TARGET_URL: pair.db.targetUrl });

/** A config file for the pair: `extra` is more YAML (a cutover or reverse section). */
const configFile = (extra = QUICK) => writeConfigFile(configText(TABLES, { slot: slot(), extra }));

function sink(into: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      into.push(chunk.toString("utf8"));
      callback();
    },
  });
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: sink(out), stderr: sink(err), env: env() });
  return { code, stdout: out.join(""), stderr: err.join("") };
}

interface Checked {
  code: number;
  items: Record<ReadinessItemName, ReadinessItem>;
  stdout: string;
}

/** `pgferry cutover --check --json`, with the items by name. */
async function check(file: string, ...args: string[]): Promise<Checked> {
  const run = await cli(["cutover", "--check", "--json", "--config", file, ...args]);
  expect(run.stderr).toBe("");
  const report = JSON.parse(run.stdout) as { ready: boolean; items: ReadinessItem[]; checkedAt: string };
  expect(report.ready).toBe(run.code === 0);
  expect(report.items.map((i) => i.name)).toEqual(["lag", "slot", "tables", "resync", "sequences", "verify", "reverse", "conflicts"]);
  for (const item of report.items) if (!item.ready) expect(item.hint, `${item.name} has a hint`).toBeTruthy();
  return { code: run.code, items: Object.fromEntries(report.items.map((i) => [i.name, i])) as Checked["items"], stdout: run.stdout };
}

/** The next value of each side's orders sequence, and the target's moved past the source's. */
async function syncOrdersSequence(): Promise<void> {
  const { rows } = await pair.db.source.query<{ next: string }>("SELECT (CASE WHEN is_called THEN last_value + 1 ELSE last_value END)::text AS next FROM public.orders_id_seq");
  await pair.db.target.query("SELECT setval('shop.orders_id_seq', $1::bigint + 100, false)", [rows[0]!.next]);
}

describe("pgferry cutover --check", () => {
  it("refuses bad arguments with exit 2", async () => {
    const file = await configFile();
    const bad = await cli(["cutover", "--check", "--config", file, "--verify", "maybe"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--verify must be recent, full, sample or none, not 'maybe'");
    expect(bad.stderr).toContain("usage: pgferry cutover [--config pgferry.yaml] (--check");
    const stray = await cli(["cutover", "--config", file, "--json"]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain("--json goes with --check");
    const positional = await cli(["cutover", "--check", "now", "--config", file]);
    expect(positional.code).toBe(2);
  });

  it("slot: not created before the first run (and no state, no verify)", async () => {
    const { code, items } = await check(await configFile());
    expect(code).toBe(1);
    expect(items.slot).toMatchObject({ ready: false, detail: `replication slot ${slot()} does not exist on the old database` });
    expect(items.slot.hint).toContain("start pgferry run");
    expect(items.lag).toMatchObject({ ready: false, detail: `pipeline ${slot()} has no state in _pgferry on the new database` });
    expect(items.tables).toMatchObject({ ready: false, detail: `pipeline ${slot()} has no state in _pgferry on the new database` });
    expect(items.verify).toMatchObject({ ready: false, detail: "forward: no pgferry verify recorded" });
    expect(items.reverse).toMatchObject({ ready: true, detail: "no reverse section" });
    expect(items.resync.ready).toBe(true);
    expect(items.conflicts.ready).toBe(true);
  });

  it("all ready: streaming, sequences moved past the old keys, a verify recorded; exit 0 (and the daemon's poller agrees)", async () => {
    const running = pair.start(config());
    await streaming(running);
    await waitFor(() => pair.db.target.query<{ n: string }>(`SELECT count(*)::text AS n FROM _pgferry.tables WHERE pipeline = $1 AND state = 'ready'`, [slot()]), {
      description: "both tables copied",
      until: (r) => r.rows[0]?.n === "2",
      timeoutMs: 60_000,
    });
    await pair.db.source.query("INSERT INTO public.orders (note) VALUES ('streamed')");
    await waitFor(() => pair.db.target.query("SELECT 1 FROM shop.orders WHERE note = 'streamed'"), { description: "the streamed order", until: (r) => r.rowCount === 1 });
    await syncOrdersSequence();
    const file = await configFile("");

    // Sequences behind until synced; verify not recorded until pgferry verify ran.
    const verified = await cli(["verify", "--config", file]);
    expect(verified.stdout).toContain("public.orders -> shop.orders: equal (51 rows)");
    expect(verified.code).toBe(0);
    expect(verified.stderr).toBe("");

    const { code, items } = await check(file);
    expect(Object.values(items).filter((i) => !i.ready)).toEqual([]);
    expect(code).toBe(0);
    expect(items.lag.detail).toMatch(/^\d+\.\d s behind \(.* of WAL not applied\); limit cutover.maxLagSeconds 5 s$/);
    expect(items.slot.detail).toMatch(new RegExp(`^replication slot ${slot()} in use, wal_status reserved, retains .* of WAL \\(limit cutover.maxRetainedWalBytes 1.0 GiB\\)$`));
    expect(items.tables.detail).toBe("2 of 2 tables ready");
    expect(items.resync.detail).toBe("no resync running");
    expect(items.sequences.detail).toMatch(/^1 new-side sequences ahead of the old side's keys \(closest: shop\.orders_id_seq, 100 ahead\)$/);
    expect(items.verify.detail).toMatch(/^forward: equal, 2 tables, \d+ s ago$/);
    expect(items.conflicts.detail).toBe("no unresolved conflicts (forward)");

    // The table as people read it.
    const human = await cli(["cutover", "--check", "--config", file]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^CHECK +STATUS +DETAIL$/m);
    expect(human.stdout).toMatch(/^sequences +ready +1 new-side sequences ahead/m);
    expect(human.stdout).toContain("ready for the cutover: all 8 checks pass");

    // The daemon judges the cheap items the same way, from its status poller's readings.
    const monitor = new PipelineMonitor({ slot: slot(), readyMaxLagSeconds: 30 });
    const metrics = new PipelineMetrics({ monitor, processMetrics: false });
    const poller = new StatusPoller({
      sourceUrl: pair.db.sourceUrl, targetUrl: pair.db.targetUrl, stateSchema: "_pgferry", slot: slot(), intervalMs: 60_000, log: capturingLogger().log,
      onSource: (reading, startedAt) => monitor.sourcePolled(reading, startedAt),
      onTarget: (reading) => monitor.targetPolled(reading),
      opposite: null,
    });
    try {
      await poller.pollNow();
      expect(monitor.readinessChecks().map((i) => [i.name, i.ready])).toEqual([["lag", true], ["slot", true], ["tables", true], ["resync", true], ["conflicts", true]]);
      const ready = await metrics.registry.getSingleMetric("pgferry_ready")!.get();
      expect(ready.values.map((v) => [v.labels.check, v.value])).toEqual([["lag", 1], ["slot", 1], ["tables", 1], ["resync", 1], ["conflicts", 1]]);
      expect((await metrics.registry.getSingleMetric("pgferry_cutover_step")!.get()).values[0]?.value).toBe(0);
    } finally {
      await poller.stop();
    }
  });

  it("lag: the pipeline stopped while the source is written", async () => {
    await pair.stopAll();
    await pair.db.source.query("INSERT INTO public.orders (note) SELECT 'while stopped ' || g FROM generate_series(1, 10) AS g");
    const file = await configFile(QUICK);
    // Lag in seconds bounds the age of the oldest change not applied: over the limit once it is that old.
    const { code, items } = await waitFor(() => check(file), { description: "the lag over 1 s", until: (c) => !c.items.lag.ready, timeoutMs: 30_000 });
    expect(code).toBe(1);
    expect(items.lag.detail).toMatch(/^\d+\.\d s behind \(\d+(\.\d)? (B|KiB|MiB) of WAL not applied\): above cutover.maxLagSeconds 1 s$/);
    expect(items.lag.hint).toContain("pgferry is behind or not running");
    // Nothing streams from the slot either.
    expect(items.slot.detail).toMatch(/exists but nothing streams from it/);
    // What the target has not received does not stay in the way of the verify tests below.
    await pair.db.source.query("DELETE FROM public.orders WHERE note LIKE 'while stopped %'");
  });

  it("slot: retaining more WAL than cutover.maxRetainedWalBytes, or not in use", async () => {
    const { code, items } = await check(await configFile(`${QUICK}  maxRetainedWalBytes: 1\n`));
    expect(code).toBe(1);
    expect(items.slot.ready).toBe(false);
    // Stopped pipeline: nothing streams; the retained WAL is named against the 1 B limit either way.
    expect(items.slot.detail).toMatch(new RegExp(`^replication slot ${slot()} (exists but nothing streams from it; retains|retains) .* of WAL \\(limit cutover.maxRetainedWalBytes 1 B\\)`));
  });

  it("tables: one errored, one pending", async () => {
    await pair.db.target.query("UPDATE _pgferry.tables SET state = 'errored', error = 'copy failed: disk full' WHERE pipeline = $1 AND source_table = 'public.items'", [slot()]);
    await pair.db.target.query("UPDATE _pgferry.tables SET state = 'pending' WHERE pipeline = $1 AND source_table = 'public.orders'", [slot()]);
    try {
      const { code, items } = await check(await configFile());
      expect(code).toBe(1);
      expect(items.tables).toMatchObject({ ready: false, detail: "0 of 2 tables ready: public.items errored (copy failed: disk full), public.orders pending" });
      expect(items.tables.hint).toContain("fix the error it names and restart pgferry");
    } finally {
      await pair.db.target.query("UPDATE _pgferry.tables SET state = 'ready', error = NULL WHERE pipeline = $1", [slot()]);
    }
  });

  it("tables: a copied table's secondary index not built again yet (snapshot.deferIndexes), and the daemon's poller says the same", async () => {
    await pair.db.target.query(
      `INSERT INTO _pgferry.deferred_indexes (table_schema, index_name, table_name, pipeline, definition, method)
       VALUES ('shop', 'items_name_idx', 'items', $1, 'CREATE INDEX items_name_idx ON shop.items USING btree (name)', 'btree'),
              ('shop', 'other_idx', 'items', 'another_pipeline', 'CREATE INDEX other_idx ON shop.items USING btree (id)', 'btree')`,
      [slot()],
    );
    const monitor = new PipelineMonitor({ slot: slot(), readyMaxLagSeconds: 30 });
    const poller = new StatusPoller({
      sourceUrl: pair.db.sourceUrl, targetUrl: pair.db.targetUrl, stateSchema: "_pgferry", slot: slot(), intervalMs: 60_000, log: capturingLogger().log,
      onSource: () => undefined,
      onTarget: (reading) => monitor.targetPolled(reading),
      opposite: null,
    });
    try {
      const { code, items } = await check(await configFile());
      expect(code).toBe(1);
      // Another pipeline's record is its own business.
      expect(items.tables).toMatchObject({ ready: false, detail: "2 of 2 tables copied; secondary indexes not built again yet: shop.items (items_name_idx)" });
      expect(items.tables.hint).toContain("builds a table's secondary indexes once its copy ends");
      await poller.pollNow();
      expect(monitor.readinessChecks().find((i) => i.name === "tables")).toEqual(items.tables);
    } finally {
      await poller.stop();
      await pair.db.target.query("DELETE FROM _pgferry.deferred_indexes WHERE table_schema = 'shop'");
    }
    expect((await check(await configFile())).items.tables).toMatchObject({ ready: true, detail: "2 of 2 tables ready" });
  });

  it("resync: a resync running", async () => {
    await pair.db.target.query("INSERT INTO _pgferry.resyncs (id, pipeline, source_table, state, rows_done, rows_estimated) VALUES ('r-1', $1, 'public.orders', 'running', 12, 61)", [slot()]);
    try {
      const { code, items } = await check(await configFile());
      expect(code).toBe(1);
      expect(items.resync).toMatchObject({ ready: false, detail: "1 resync running: public.orders (id r-1, 12 of ~61 rows)" });
      expect(items.resync.hint).toContain("wait for it to finish");
    } finally {
      await pair.db.target.query("DELETE FROM _pgferry.resyncs WHERE id = 'r-1'");
    }
  });

  it("sequences: the new side's behind the keys the old side used", async () => {
    await pair.db.target.query("SELECT setval('shop.orders_id_seq', 5)");
    try {
      const { code, items } = await check(await configFile());
      expect(code).toBe(1);
      expect(items.sequences.ready).toBe(false);
      expect(items.sequences.detail).toMatch(/^1 of 1 new-side sequences behind the keys the old side used: shop\.orders_id_seq \(shop\.orders\.id\) next 6, needs \d+$/);
      expect(items.sequences.hint).toContain("pgferry sequences sync");
    } finally {
      await syncOrdersSequence();
    }
  });

  it("verify: none recorded, an old one, a different one; --verify full and sample compare now; --verify none skips", async () => {
    const file = await configFile();
    await pair.db.target.query("DELETE FROM _pgferry.verifications");
    let checked = await check(file);
    expect(checked.code).toBe(1);
    expect(checked.items.verify).toMatchObject({ ready: false, detail: "forward: no pgferry verify recorded" });
    expect(checked.items.verify.hint).toContain("run pgferry verify");

    await pair.db.target.query("INSERT INTO _pgferry.verifications (pipeline, direction, finished_at, equal, tables, different) VALUES ($1, 'forward', now() - interval '2 hours', true, 2, 0)", [slot()]);
    checked = await check(file);
    expect(checked.items.verify).toMatchObject({ ready: false, detail: "forward: the last pgferry verify was 2.0 h ago, older than cutover.verifyMaxAgeSeconds (3600 s)" });

    await pair.db.target.query("INSERT INTO _pgferry.verifications (pipeline, direction, equal, tables, different) VALUES ($1, 'forward', false, 2, 1)", [slot()]);
    checked = await check(file);
    expect(checked.code).toBe(1);
    expect(checked.items.verify.detail).toMatch(/^forward: the last pgferry verify \(\d+ s ago\) found 1 of 2 tables different$/);

    // Drift on the target (the pipeline is stopped, so it stays): a comparison now finds it, and records it.
    await pair.db.target.query("UPDATE shop.items SET name = 'drifted' WHERE id = 3");
    try {
      checked = await check(file, "--verify", "full");
      expect(checked.items.verify).toMatchObject({ ready: false, detail: "compared now: forward: 1 of 2 tables different (public.items -> shop.items)" });
      checked = await check(file, "--verify", "sample");
      expect(checked.items.verify.detail).toMatch(/^sample: the verifier sums every row of each bucket, so a sample costs what the whole does; compared in full: forward: 1 of 2 tables different/);
      const recorded = await pair.db.target.query<{ equal: boolean; different: number }>("SELECT equal, different FROM _pgferry.verifications ORDER BY finished_at DESC LIMIT 1");
      expect(recorded.rows[0]).toEqual({ equal: false, different: 1 });
    } finally {
      await pair.db.target.query("UPDATE shop.items SET name = 'item 3' WHERE id = 3");
    }
    checked = await check(file, "--verify", "none");
    expect(checked.items.verify).toMatchObject({ ready: true, detail: "not checked (--verify none)" });
  });

  it("reverse: a reverse section without the reverse pipeline", async () => {
    const file = await configFile(`${QUICK}reverse:\n  slot: ${slot()}_rev\n  publication: ${slot()}_rev\n`);
    const { code, items } = await check(file);
    expect(code).toBe(1);
    expect(items.reverse).toMatchObject({ ready: false, detail: `reverse pipeline ${slot()}_rev has no state in _pgferry on the old database` });
    expect(items.reverse.hint).toContain("pgferry run --direction reverse");

    // The forward daemon reads the other direction too (its state on the old database, its slot on the new one).
    const withReverse = loadConfig(file, env());
    const monitor = new PipelineMonitor({ slot: slot(), readyMaxLagSeconds: 30, readinessLimits: readinessLimits(withReverse), targets: sourceTargets(withReverse) });
    const poller = new StatusPoller({
      sourceUrl: pair.db.sourceUrl, targetUrl: pair.db.targetUrl, stateSchema: "_pgferry", slot: slot(), intervalMs: 60_000, log: capturingLogger().log,
      onSource: (reading, startedAt) => monitor.sourcePolled(reading, startedAt),
      onTarget: (reading) => monitor.targetPolled(reading),
      opposite: oppositeOf(withReverse, "forward"),
      onOpposite: (reading) => monitor.oppositePolled(reading),
    });
    try {
      await poller.pollNow();
      expect(monitor.readinessChecks().find((i) => i.name === "reverse")).toEqual(items.reverse);
      expect(monitor.streamed().map((t) => [t.table, t.targets])).toEqual([["public.items", ["shop.items"]], ["public.orders", ["shop.orders"]]]);
    } finally {
      await poller.stop();
    }
  });

  it("conflicts: a conflict the pipeline stopped on and has not applied past", async () => {
    const insert = (at: string) =>
      pair.db.target.query(
        `INSERT INTO _pgferry.conflicts (pipeline, direction, table_name, key_columns, key_fingerprint, resolution, kept, detected_at)
         VALUES ($1, 'forward', 'shop.orders', 'id', 'abc123', 'stop', 'stopped', ${at})`,
        [slot()],
      );
    // One the pipeline applied past (before its last checkpoint) is resolved.
    await insert("now() - interval '1 day'");
    let checked = await check(await configFile());
    expect(checked.items.conflicts).toMatchObject({ ready: true, detail: "no unresolved conflicts (forward)" });
    await insert("now()");
    checked = await check(await configFile());
    expect(checked.code).toBe(1);
    expect(checked.items.conflicts).toMatchObject({ ready: false, detail: "1 unresolved conflict (forward): the pipeline stopped on rows both sides wrote" });
    expect(checked.items.conflicts.hint).toContain("pgferry conflicts");
  });
});

describe("the PgferryNotReadyDuringCutover alert", () => {
  it("fires when a readiness check is 0 for 2 minutes while a cutover step runs, and not outside a cutover", async () => {
    const run = promisify(execFile);
    const dir = await mkdtemp(join(tmpdir(), "pgferry-rules-"));
    try {
      const alerts = join(ROOT, "deploy/prometheus/alerts.yml");
      const rules = parse(await readFile(alerts, "utf8")) as { groups: { rules: { alert: string; labels: Record<string, string>; annotations: Record<string, string> }[] }[] };
      const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === "PgferryNotReadyDuringCutover")!;
      expect(rule).toBeDefined();
      const labels = { job: "pgferry", instance: "a:9187", check: "lag" };
      // The annotations as Prometheus renders them: the rule's templates with these labels.
      const annotations = Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l as keyof typeof labels])]));
      const firing = JSON.stringify([{ exp_labels: { ...labels, severity: rule.labels.severity }, exp_annotations: annotations }]);
      const base = 'job="pgferry",instance="a:9187"';
      await writeFile(join(dir, "test.yml"), `rule_files: [${JSON.stringify(alerts)}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'pgferry_ready{${base},check="lag"}'
        values: '0 0 0 0 0 0 0 0 0 0 1 1 1'
      - series: 'pgferry_ready{${base},check="slot"}'
        values: '1 1 1 1 1 1 1 1 1 1 1 1 1'
      - series: 'pgferry_cutover_step{${base}}'
        values: '0 0 0 0 0 2 2 2 2 2 2 2 2'
    alert_rule_test:
      - { eval_time: 4m, alertname: PgferryNotReadyDuringCutover, exp_alerts: [] }
      - { eval_time: 6m, alertname: PgferryNotReadyDuringCutover, exp_alerts: [] }
      - { eval_time: 8m, alertname: PgferryNotReadyDuringCutover, exp_alerts: ${firing} }
      - { eval_time: 11m, alertname: PgferryNotReadyDuringCutover, exp_alerts: [] }
`);
      const { stdout } = await run("promtool", ["test", "rules", join(dir, "test.yml")]).catch((error: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`promtool test rules failed (installed by scripts/install-test-tools.sh): ${error.stdout ?? ""}${error.stderr ?? error.message}`);
      });
      expect(stdout).toContain("SUCCESS");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
