/**
 * `pgferry run` serves the control API from the start, and `pgferry status` (the built CLI, as an
 * operator runs it) shows the daemon's status, or, with no daemon running, the state read from the
 * target, saying so.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineStatus } from "../../src/control/pipelineMonitor.js";
import { createFixture, mappings, seed } from "../fixtures/appSchema.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { CLI, configYaml, runCli, writeConfigFile, type ChildRun } from "../harness/processRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { ADMIN_TOKEN, freePort, request } from "./controlSupport.js";

const run = promisify(execFile);
let db: TestDatabases;
let daemon: ChildRun | undefined;

beforeAll(async () => {
  db = await createTestDatabases("control_cli");
  await createFixture(db.source, db.target);
  await seed(db.source, 200);
  await db.source.query("ANALYZE");
});
afterAll(async () => {
  daemon?.child.kill("SIGKILL");
  await db?.drop();
});

async function status(file: string, env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, "status", "--config", file, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("pgferry status", () => {
  it("shows the running daemon's status, then the target's state once the daemon is stopped", async () => {
    const port = await freePort();
    const slot = `pgferry_${db.name}`;
    const file = await writeConfigFile(configYaml(mappings(), `control:\n  listen: 127.0.0.1:${port}\n  adminToken: ${ADMIN_TOKEN}\n`, slot));
    const env = { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl };
    daemon = runCli(["run", "--config", file], env);
    const base = `http://127.0.0.1:${port}`;
    await waitFor(() => request(`${base}/readyz`), { description: "the daemon ready", until: (r) => r.status === 200, timeoutMs: 60_000, intervalMs: 200 }).catch((error: Error) => {
      throw new Error(`${error.message}\n${daemon?.output.join("").slice(-3000)}`);
    });

    const json = await status(file, env, "--json");
    expect(json.code).toBe(0);
    const live = JSON.parse(json.stdout) as PipelineStatus;
    expect(live).toMatchObject({ pipeline: slot, phase: "streaming", readiness: { ready: true } });
    expect(live.tables.map((t) => [t.table, t.state, t.rowsCopied])).toEqual([
      ["public.accounts", "ready", 200],
      ["public.audit", "ready", 200],
      ["public.events", "ready", 200],
      ["public.items", "ready", 200],
    ]);

    const text = await status(file, env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^pipeline ${slot}: phase streaming since \\S+ \\(ready\\)$`, "m"));
    expect(text.stdout).toMatch(/^lag \d+\.\d s, \d+(\.\d)? \S+ · checkpoint [0-9A-F]+\/[0-9A-F]+/m);
    expect(text.stdout).toMatch(/^TABLE\s+STATE\s+ROWS COPIED\s+ESTIMATED\s+%$/m);
    expect(text.stdout).toMatch(/^public\.accounts\s+ready\s+200\s+200\s+100\.0$/m);

    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    daemon = undefined;

    const stored = await status(file, env);
    expect(stored.code).toBe(0);
    expect(stored.stdout).toContain(`pgferry is not running: no answer from pgferry at ${base} (ECONNREFUSED); state read from the target instead`);
    expect(stored.stdout).toMatch(new RegExp(`^pipeline ${slot}: checkpoint [0-9A-F]+/[0-9A-F]+`, "m"));
    expect(stored.stdout).toMatch(/^public\.items\s+ready\s+200\s+200\s+100\.0$/m);

    const storedJson = await status(file, env, "--json");
    expect(storedJson.code).toBe(0);
    expect(storedJson.stderr).toContain("state read from the target instead");
    const parsed = JSON.parse(storedJson.stdout) as { daemon: string; pipeline: string; tables: unknown[] };
    expect(parsed).toMatchObject({ daemon: "not running", pipeline: slot });
    expect(parsed.tables).toHaveLength(4);
  });

  it("fails with a clear message when neither a daemon nor any state is there", async () => {
    const port = await freePort();
    const file = await writeConfigFile(configYaml(mappings(), `control:\n  listen: 127.0.0.1:${port}\n`, "pgferry_never_ran"));
    const result = await status(file, { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/state error: no answer from pgferry at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\), and the target has no state for pipeline pgferry_never_ran/);
    expect(result.stderr).toContain("hint: start the pipeline with `pgferry run`");
  });

  it("refuses to start the daemon when the control port is taken", async () => {
    const port = await freePort();
    const holder = await import("node:net").then(({ createServer }) => {
      const server = createServer();
      return new Promise<typeof server>((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
    });
    try {
      const file = await writeConfigFile(configYaml(mappings(), `control:\n  listen: 127.0.0.1:${port}\n`));
      const child = runCli(["run", "--config", file], { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
      const exit = await child.exited;
      expect(child.output.join("")).toMatch(/config error: control server cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
      expect(exit).toEqual({ code: 2, signal: null });
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
