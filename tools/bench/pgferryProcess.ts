/**
 * One `pgferry run` child process (the built CLI, as operators run it): its log lines (kept as a
 * tail for error reports), when it said it is streaming, its peak RSS (VmHWM from /proc, sampled
 * while it lives because the figure vanishes with the process), and a draining stop (SIGTERM).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../repoRoot.js";
import { RUNTIME_ENV, RUNTIME_NODE_OPTIONS } from "../../src/cli/heapPolicy.js";

/** The shipped build of the CLI (`npm run build`), which expects to sit in dist/ beside package.json. */
export const CLI = join(REPO_ROOT, "dist/cli/bin.js");

const TAIL_LINES = 80;

/** Where a process's files go: its whole log (`<label>.log`, appended) and, with `profile`, a V8 CPU profile. */
export interface ProcessOutputs {
  dir: string;
  profile: boolean;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class PgferryProcess {
  /** performance.now() when the process logged "streaming". */
  streamingAt: number | undefined;
  readonly startedAt = performance.now();
  private readonly child: ChildProcess;
  private readonly tail: string[] = [];
  private partial = "";
  private exit: ProcessExit | undefined;
  private readonly exited: Promise<ProcessExit>;
  private peak = 0;
  private readonly sampler: NodeJS.Timeout;
  private readonly logFile: WriteStream | undefined;

  /** `outputs`: keep the log, and a V8 CPU profile named `<label>.cpuprofile` written on exit. `runArgs`: more flags of `pgferry run` (`--direction reverse`). */
  constructor(configFile: string, readonly label: string, readonly outputs?: ProcessOutputs, runArgs: readonly string[] = []) {
    const profileDir = outputs?.profile ? outputs.dir : undefined;
    const nodeFlags = [
      // As the container image starts it (its NODE_OPTIONS).
      ...RUNTIME_NODE_OPTIONS.split(" "),
      ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${label}.cpuprofile`] : []),
    ];
    this.child = spawn(process.execPath, [...nodeFlags, CLI, "run", "--config", configFile, ...runArgs], {
      stdio: ["ignore", "pipe", "pipe"],
      // The parent's environment and what the container image adds to it.
      // eslint-disable-next-line no-restricted-syntax -- handed to the child whole, not read
      env: { ...process.env, ...RUNTIME_ENV },
    });
    this.child.stdout?.on("data", (chunk: Buffer) => this.onOutput(chunk));
    this.child.stderr?.on("data", (chunk: Buffer) => this.onOutput(chunk));
    this.exited = new Promise((resolveExit) => {
      this.child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        resolveExit(this.exit);
      });
    });
    this.sampler = setInterval(() => this.samplePeak(), 200);
    this.logFile = outputs ? createWriteStream(join(outputs.dir, `${label}.log`), { flags: "a" }) : undefined;
  }

  get pid(): number | undefined {
    return this.exit ? undefined : this.child.pid;
  }

  get cpuProfile(): string | undefined {
    return this.outputs?.profile ? join(this.outputs.dir, `${this.label}.cpuprofile`) : undefined;
  }

  /** Peak RSS so far in bytes. */
  peakRss(): number {
    this.samplePeak();
    return this.peak;
  }

  /** Throws (with the last log lines) when the process has exited. */
  checkAlive(): void {
    if (this.exit) {
      throw new Error(`pgferry (${this.label}) exited with ${this.exit.signal ?? `code ${this.exit.code}`}; last output:\n${this.outputTail()}`);
    }
  }

  outputTail(lines = 30): string {
    return this.tail.slice(-lines).map((l) => `  | ${l}`).join("\n");
  }

  /** SIGTERM (pgferry drains and exits 0); SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 60_000): Promise<ProcessExit> {
    this.samplePeak();
    if (!this.exit) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    clearInterval(this.sampler);
    this.logFile?.end();
    return this.exit!;
  }

  private samplePeak(): void {
    if (this.exit || this.child.pid === undefined) return;
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, "utf8"));
      if (match) this.peak = Math.max(this.peak, Number(match[1]) * 1024);
    } catch {
      // The process is exiting.
    }
  }

  private onOutput(chunk: Buffer): void {
    this.logFile?.write(chunk);
    const lines = (this.partial + chunk.toString("utf8")).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.length === 0) continue;
      this.tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
      if (this.streamingAt === undefined && line.includes('"msg":"streaming"')) this.streamingAt = performance.now();
    }
  }
}
