/**
 * A real Prometheus (Debian's package, installed by scripts/install-test-tools.sh) scrapes a running
 * pipeline's /metrics every second with pgferry's alert rules loaded; PromQL over its HTTP API
 * returns the replication lag, and every alert rule evaluates without error. promtool accepts the
 * shipped rules and scrape config.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFixture, mappings, seed } from "../fixtures/appSchema.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { testConfig } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { freePort, request, startControlled, type ControlledPipeline } from "./controlSupport.js";

const ROOT = resolve(import.meta.dirname, "../..");
const ALERTS = join(ROOT, "deploy/prometheus/alerts.yml");

/** The path of an installed tool; fails (never skips) with how to install it. */
function requireBinary(name: string): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} is not installed: run \`bash scripts/install-test-tools.sh\` (as root; \`npm test\` runs it) to install Debian's prometheus package`);
}

interface QueryResult { status: string; data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } }
interface RulesResult { data: { groups: { rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[] }[] } }

let db: TestDatabases;
let running: ControlledPipeline | undefined;
let prometheus: ChildProcess | undefined;
let dataDir: string | undefined;
const prometheusLog: string[] = [];

beforeAll(async () => {
  db = await createTestDatabases("prometheus");
  await createFixture(db.source, db.target);
  await seed(db.source, 50);
});
afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus!.once("exit", r));
    prometheus.kill("SIGTERM");
    await exited;
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  await running?.stop();
  await db?.drop();
});

describe("Prometheus", () => {
  it("promtool accepts the alert rules and the scrape config", async () => {
    const promtool = requireBinary("promtool");
    const run = promisify(execFile);
    const rules = await run(promtool, ["check", "rules", ALERTS]);
    expect(rules.stdout).toMatch(/SUCCESS: \d+ rules found/);
    const config = await run(promtool, ["check", "config", join(ROOT, "deploy/prometheus/prometheus.yml")]);
    expect(config.stdout).toMatch(/is valid prometheus config file syntax/);
  });

  it("scrapes pgferry, answers PromQL for the replication lag, and evaluates every alert rule", async () => {
    const binary = requireBinary("prometheus");
    running = await startControlled(testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings() }));
    await waitFor(() => request(`${running!.base}/readyz`), { description: "pgferry ready", until: (r) => r.status === 200 });

    dataDir = await mkdtemp(join(tmpdir(), "pgferry-prometheus-"));
    const port = await freePort();
    const target = new URL(running.base).host;
    await writeFile(
      join(dataDir, "prometheus.yml"),
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - ${JSON.stringify(ALERTS)}\nscrape_configs:\n  - job_name: pgferry\n    static_configs:\n      - targets: [${JSON.stringify(target)}]\n`,
    );
    prometheus = spawn(binary, [
      `--config.file=${join(dataDir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dataDir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    prometheus.stdout?.on("data", (d: Buffer) => prometheusLog.push(d.toString()));
    prometheus.stderr?.on("data", (d: Buffer) => prometheusLog.push(d.toString()));
    const api = `http://127.0.0.1:${port}`;
    const fail = (error: Error) => {
      throw new Error(`${error.message}\n--- prometheus output ---\n${prometheusLog.join("").slice(-3000)}`);
    };
    await waitFor(() => request(`${api}/-/ready`), { description: "Prometheus ready", until: (r) => r.status === 200, intervalMs: 100 }).catch(fail);

    const query = (promql: string) => request(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`).then((r) => r.body as QueryResult);
    const lag = await waitFor(() => query("pgferry_replication_lag_bytes"), {
      description: "a PromQL result for pgferry_replication_lag_bytes",
      until: (r) => r.data.result.length === 1 && Number.isFinite(Number(r.data.result[0]!.value[1])),
      intervalMs: 250,
    }).catch(fail);
    expect(lag.status).toBe("success");
    expect(lag.data.result[0]!.metric).toEqual({ __name__: "pgferry_replication_lag_bytes", job: "pgferry", instance: target });
    expect(Number(lag.data.result[0]!.value[1])).toBeGreaterThanOrEqual(0);

    const up = await query('up{job="pgferry"}');
    expect(up.data.result.map((r) => r.value[1])).toEqual(["1"]);
    const streaming = await query('pgferry_pipeline_phase{phase="streaming"}');
    expect(streaming.data.result.map((r) => r.value[1])).toEqual(["1"]);

    // Every shipped alert rule has been evaluated against the real series without an error.
    const rules = await waitFor(() => request(`${api}/api/v1/rules`).then((r) => (r.body as RulesResult).data.groups.flatMap((g) => g.rules)), {
      description: "every alert rule evaluated",
      until: (list) => list.length > 0 && list.every((rule) => rule.health !== "unknown"),
      intervalMs: 250,
    }).catch(fail);
    expect(rules.filter((rule) => rule.health !== "ok").map((rule) => `${rule.name}: ${rule.lastError ?? rule.health}`)).toEqual([]);
    expect(rules.map((rule) => rule.name)).toContain("PgferryReplicationLagHigh");
  });
});
