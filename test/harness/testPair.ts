/**
 * The scaffolding most integration files share, in one call: a fresh database pair for the file
 * (created before its tests, dropped after them, kept when PGFERRY_KEEP_FAILED=1 and a test failed),
 * and pipelines started through it, each stopped after the test that started it, also when it fails.
 */
import { afterAll, afterEach, beforeAll } from "vitest";
import type { Config } from "../../src/config/index.js";
import type { Direction } from "../../src/config/directions.js";
import type { ResyncEngine } from "../../src/pipeline/resync/resyncEngine.js";
import { createTestDatabases, type TestDatabases } from "./databases.js";
import { startPipeline, testConfig, type RunningPipeline, type TestConfigOptions } from "./pipelineRunner.js";

export interface TestPair {
  /** The file's databases (available from its tests and hooks on). */
  readonly db: TestDatabases;
  /** testConfig with the pair's URLs. */
  config(options: Omit<TestConfigOptions, "sourceUrl" | "targetUrl">): Config;
  /** Starts a pipeline in-process; it is stopped after the current test. */
  start(config: Config, extra?: { resyncs?: ResyncEngine; direction?: Direction }): RunningPipeline;
  /** Stops the pipelines started so far (a test that restarts one calls it first). */
  stopAll(): Promise<void>;
}

export function useTestPair(label: string, setup?: (db: TestDatabases) => Promise<void>): TestPair {
  let db: TestDatabases | undefined;
  const started: RunningPipeline[] = [];
  const pair: TestPair = {
    get db(): TestDatabases {
      if (!db) throw new Error(`the ${label} databases are created in beforeAll: use them from a test or a hook`);
      return db;
    },
    config: (options) => testConfig({ ...options, sourceUrl: pair.db.sourceUrl, targetUrl: pair.db.targetUrl }),
    start(config, extra) {
      const running = startPipeline(config, extra);
      started.push(running);
      return running;
    },
    async stopAll() {
      const stopping = started.splice(0);
      await Promise.all(stopping.map((running) => running.stop()));
    },
  };
  beforeAll(async () => {
    db = await createTestDatabases(label);
    await setup?.(db);
  });
  afterEach(() => pair.stopAll());
  afterAll(async () => {
    await pair.stopAll();
    await db?.drop();
  });
  return pair;
}
