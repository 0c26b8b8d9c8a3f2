/**
 * Runs the built CLI (`dist/cli/bin.js`) as a child process, as operators do: for crash tests
 * (SIGKILL at any moment), signal handling and memory measurements (peak RSS from /proc).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const CLI = resolve(import.meta.dirname, "../../dist/cli/bin.js");

export interface ChildRun {
  child: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Peak resident set size so far, in bytes (Linux VmHWM). */
  peakRss(): number;
}

export async function writeConfigFile(yaml: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "pgferry-test-config-"));
  const file = join(dir, "pgferry.yaml");
  await writeFile(file, yaml);
  return file;
}

export function runCli(args: string[], env: Record<string, string>): ChildRun {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  child.stdout.on("data", (d: Buffer) => output.push(d.toString("utf8")));
  child.stderr.on("data", (d: Buffer) => output.push(d.toString("utf8")));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.on("exit", (code, signal) => resolveExit({ code, signal }));
  });
  return {
    child,
    output,
    exited,
    peakRss() {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const match = /VmHWM:\s+(\d+) kB/.exec(status);
      return match ? Number(match[1]) * 1024 : 0;
    },
  };
}

export interface ConfigTextOptions {
  /** Config text appended before `tables` (e.g. a `control:` section). */
  extra?: string;
  slot?: string;
  chunkRows?: number;
  retry?: { maxAttempts: number; initialDelayMs: number; maxDelayMs: number };
}

/**
 * YAML for a test config whose URLs come from SOURCE_URL / TARGET_URL in the environment. Slots are
 * per cluster and test files share the clusters, so the default slot name is unique; the control
 * server listens on a free port unless `extra` has a `control:` section.
 */
export function configText(tables: readonly { from: string; to: string }[], options: ConfigTextOptions = {}): string {
  const slot = options.slot ?? `pgferry_${randomBytes(4).toString("hex")}`;
  const retry = options.retry ?? { maxAttempts: 100, initialDelayMs: 100, maxDelayMs: 1000 };
  const extra = options.extra ?? "";
  return `source:
  url: \${SOURCE_URL}
  slot: ${slot}
  publication: ${slot}
target:
  url: \${TARGET_URL}
snapshot:
  workers: 2
  chunkRows: ${options.chunkRows ?? 2000}
apply:
  retry: { maxAttempts: ${retry.maxAttempts}, initialDelayMs: ${retry.initialDelayMs}, maxDelayMs: ${retry.maxDelayMs} }
log:
  level: info
  format: json
${extra.includes("control:") ? "" : "control:\n  listen: 127.0.0.1:0\n"}${extra}
tables:
${tables.map((t) => `  - { from: ${JSON.stringify(t.from)}, to: ${JSON.stringify(t.to)} }`).join("\n")}
`;
}

/** `configText` with the arguments the process tests use. */
export function configYaml(tables: readonly { from: string; to: string }[], extra = "", slot?: string): string {
  return configText(tables, { extra, slot });
}
