/**
 * `npm run demo` as a user runs it: the built demo (dist-tools/tools/demo/main.js) started from
 * another directory reaches live streaming, serves /v1/status, /metrics and the status page with
 * applied changes growing, and on SIGINT exits 0 leaving no cluster directory and no server behind.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineStatus } from "../../src/control/pipelineMonitor.js";
import { STREAMING_LINE } from "../../tools/demo/liveView.js";
import { freePort } from "../../tools/embedded/localCluster.js";
import { ensureToolsBuilt } from "../harness/build.js";
import { waitFor } from "../harness/waitFor.js";

let demo: string;
let base: string;
let child: ChildProcess | undefined;
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
const output: string[] = [];

/** Servers whose command line names `base`: the postmasters of the demo's clusters (`postgres -D <base>/.../data`). */
function serversUnder(dir: string): string[] {
  return execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes(dir) && /\bpostgres\b/.test(line));
}

function appliedChanges(metrics: string): number {
  return metrics
    .split("\n")
    .filter((line) => line.startsWith("pgferry_applied_changes_total{"))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

async function get(url: string): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() };
}

const tail = () => output.join("").slice(-4000);

beforeAll(() => {
  demo = ensureToolsBuilt(); // the tools are not part of dist/: compile them (and the src/ they import) when stale
  base = mkdtempSync(join(tmpdir(), "pgferry-demo-test-"));
  chmodSync(base, 0o755); // the demo runs its servers as the postgres OS user when we are root
});

afterAll(async () => {
  // Only after a failure: stop what the demo left running (by pid, only servers under this test's directory).
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill("SIGINT");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  for (const line of serversUnder(base)) process.kill(Number(line.trim().split(/\s+/)[0]), "SIGQUIT");
  rmSync(base, { recursive: true, force: true });
});

describe("npm run demo", () => {
  it("reaches streaming, serves status and growing metrics, and stops cleanly on SIGINT", async () => {
    const port = await freePort();
    // From another directory: the demo finds config/reorg.example.yaml (and its hook) by itself.
    child = spawn(process.execPath, [demo, "--port", String(port), "--dir", base, "--scale", "1"], {
      cwd: tmpdir(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    exited = new Promise((resolveExit) => child!.on("exit", (code, signal) => resolveExit({ code, signal })));
    child.stdout!.on("data", (d: Buffer) => output.push(d.toString("utf8")));
    child.stderr!.on("data", (d: Buffer) => output.push(d.toString("utf8")));

    await waitFor(
      () => {
        if (child!.exitCode !== null) throw new Error(`the demo exited with ${child!.exitCode}`);
        return output.join("").includes(STREAMING_LINE);
      },
      { description: `"${STREAMING_LINE}"`, timeoutMs: 90_000, intervalMs: 200 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n--- demo output ---\n${tail()}`);
    });

    const api = `http://127.0.0.1:${port}`;
    // The per-table states come with the status poller's first reading of the target, which may follow the streaming line.
    const status = await waitFor(() => get(`${api}/v1/status`), {
      description: "the status with the tables polled",
      until: (r) => r.status !== 200 || (JSON.parse(r.body) as PipelineStatus).tables.length > 0,
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    expect(status.status).toBe(200);
    const body = JSON.parse(status.body) as PipelineStatus;
    expect(body.phase).toBe("streaming");
    expect(body.tables).toHaveLength(27);

    const first = appliedChanges((await get(`${api}/metrics`)).body);
    await waitFor(async () => appliedChanges((await get(`${api}/metrics`)).body), {
      description: "pgferry_applied_changes_total growing under the demo's live load",
      until: (n) => n > first && n > 0,
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    const page = await get(`${api}/`);
    expect(page.status).toBe(200);
    expect(page.type).toContain("text/html");

    expect(serversUnder(base)).toHaveLength(2); // the check below is meaningful: it does see the demo's servers
    child.kill("SIGINT");
    const result = await Promise.race([
      exited,
      new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 30_000)),
    ]);
    expect(result, tail()).toEqual({ code: 0, signal: null });
    expect(tail()).toContain("stopped; nothing is left behind");
    expect(readdirSync(base)).toEqual([]);
    expect(serversUnder(base)).toEqual([]);
  });
});
