/**
 * Runs a pipeline in-process for a test and stops it afterwards; collects what it reports, so a test
 * can wait on state (phase, checkpoint) instead of sleeping.
 */
import { Writable } from "node:stream";
import { onTestFailed } from "vitest";
import { parseConfig, type Config } from "../../src/config/index.js";
import { createLogger } from "../../src/log/logger.js";
import type { Phase, PipelineObserver } from "../../src/pipeline/pipeline.js";
import { runPipeline } from "../../src/daemon.js";
import type { Direction } from "../../src/config/directions.js";
import { configText } from "./processRunner.js";
import type { ResyncEngine } from "../../src/pipeline/resync/resyncEngine.js";
import { waitFor } from "./waitFor.js";

export interface RunningPipeline {
  config: Config;
  phases: Phase[];
  batches: number;
  /** Applied changes per source table and counted operation, summed over the batches. */
  applied: Map<string, Record<string, number>>;
  logs: string[];
  /** Conflicts met, per `table|kept`, summed over the batches. */
  conflicts: Map<string, number>;
  /** Source changes dropped because the other direction wrote them (its replication origin). */
  originFiltered: number;
  /** Set when the pipeline ended on an error. */
  failure?: unknown;
  /** Resolves when the pipeline ends by itself (error) or after stop(). */
  done: Promise<unknown>;
  stop(): Promise<void>;
}

export interface TestConfigOptions {
  sourceUrl: string;
  targetUrl: string;
  tables: { from: string; to: string }[];
  slot?: string;
  extra?: string;
}

export function testConfig(options: TestConfigOptions): Config {
  // Slots are per cluster and test files share the clusters: name the slot after the file's database.
  const slot = options.slot ?? `pgferry_${new URL(options.sourceUrl).pathname.slice(1)}`;
  const yaml = configText(options.tables, { slot, extra: options.extra, chunkRows: 1000, retry: { maxAttempts: 50, initialDelayMs: 100, maxDelayMs: 1000 } });
  return parseConfig(yaml, "test.yaml", { SOURCE_URL: options.sourceUrl, TARGET_URL: options.targetUrl });
}

/** A debug-level JSON logger whose lines land in `logs`, so a test can read what the pipeline said. */
export function capturingLogger(): { log: ReturnType<typeof createLogger>; logs: string[] } {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      callback();
    },
  });
  return { log: createLogger({ level: "debug", format: "json", destination: sink }), logs };
}

export function startPipeline(config: Config, extra: { resyncs?: ResyncEngine; direction?: Direction } = {}): RunningPipeline {
  const { log, logs } = capturingLogger();
  const controller = new AbortController();
  const running: RunningPipeline = {
    config,
    phases: [],
    batches: 0,
    applied: new Map(),
    conflicts: new Map(),
    originFiltered: 0,
    logs,
    done: Promise.resolve(),
    async stop() {
      controller.abort();
      await running.done.catch(() => undefined);
    },
  };
  const observer: PipelineObserver = {
    phase: (p) => running.phases.push(p),
    batchApplied: (batch) => {
      running.batches += 1;
      for (const [table, ops] of batch.perTable) {
        const sums = running.applied.get(table) ?? {};
        for (const [op, n] of Object.entries(ops)) sums[op] = (sums[op] ?? 0) + (n ?? 0);
        running.applied.set(table, sums);
      }
      for (const c of batch.conflicts ?? []) running.conflicts.set(`${c.table}|${c.kept}`, (running.conflicts.get(`${c.table}|${c.kept}`) ?? 0) + c.count);
    },
    originFiltered: (_origin, changes) => {
      running.originFiltered += changes;
    },
  };
  running.done = runPipeline(config, { log, observer, resyncs: extra.resyncs }, controller.signal, extra.direction);
  running.done.catch((error: unknown) => { running.failure = error; });
  // A failing test shows what the pipeline said last.
  onTestFailed(() => {
    console.log(`--- last pipeline log lines ---\n${logs.slice(-60).join("\n")}`);
  });
  return running;
}

/** For waitFor's `failIf`: the pipeline's error, once it stopped on one (nothing a test waits for will come then). */
export function pipelineFailed(running: RunningPipeline): () => string | undefined {
  return () => (running.failure === undefined ? undefined : `pipeline failed: ${(running.failure as Error).message}`);
}

/** Waits until the pipeline streams; fails at once, with its error, if the pipeline stops instead. */
export async function streaming(running: RunningPipeline, timeoutMs = 60_000): Promise<void> {
  await waitFor(() => running.phases.includes("streaming"), {
    description: `the pipeline to stream (phases so far: ${running.phases.join(", ") || "none"})`,
    timeoutMs,
    failIf: () => (running.failure === undefined ? undefined : `pipeline failed instead of streaming: ${(running.failure as Error).message}`),
  });
}
