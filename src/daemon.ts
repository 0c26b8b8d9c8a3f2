/**
 * The composition root: the one place that turns a config into running parts. It makes the two
 * endpoints, their pools and the state stores once, narrows the config for each component, and
 * builds the pipeline and the resync engine on them. `pgferry run`, the demo and the tests all wire
 * through here, so a second pipeline (another direction) is another call, not another copy.
 */
import type { Logger } from "pino";
import type { Config } from "./config/index.js";
import { directionConfig, originName, oppositeOf, type Direction } from "./config/directions.js";
import { ResyncEngine } from "./pipeline/resync/resyncEngine.js";
import { Pipeline, type PipelineObserver, type PipelineOptions, type PipelineSettings } from "./pipeline/pipeline.js";
import { oppositeGuard } from "./pipeline/oppositeGuard.js";
import { ConflictLog } from "./state/conflictLog.js";
import { endpoints, type Endpoint } from "./sql/endpoint.js";
import { postgresStores, type StateStores } from "./state/postgresStores.js";
import type pg from "pg";

/**
 * The config as the pipeline of `direction` needs it: names, snapshot, stream and retry settings.
 * `config` is the file as written; the reverse reads it through directionConfig.
 */
export function pipelineSettings(config: Config, direction: Direction = "forward"): PipelineSettings {
  const view = directionConfig(config, direction);
  const { apply } = view;
  const opposite = oppositeOf(config, direction);
  return {
    direction,
    slot: view.source.slot,
    publication: view.source.publication,
    stateSchema: view.target.stateSchema,
    snapshot: {
      mode: direction === "reverse" ? "none" : "copy", workers: view.snapshot.workers, chunkRows: view.snapshot.chunkRows, chunkBytes: view.snapshot.chunkBytes,
      deferIndexes: view.snapshot.deferIndexes, indexBuildMemory: view.snapshot.indexBuildMemory,
    },
    stream: {
      slot: view.source.slot,
      publication: view.source.publication,
      queueMaxBytes: apply.queueMaxBytes,
      format: apply.format,
      synchronousCommit: apply.synchronousCommit,
      limits: { maxRows: apply.batchMaxRows, maxBytes: apply.batchMaxBytes, maxMs: apply.batchMaxMs },
      // Both directions running: writes are tagged (loop prevention needs it) and the other's are dropped.
      ...(opposite ? { ignoreOrigins: [originName(opposite.slot)], requireOrigin: true } : {}),
    },
    retry: apply.retry,
    onError: apply.onError,
  };
}

/** The connections and stores of one pipeline, made once and shared by its parts; `close` ends them. */
export interface Wiring {
  source: Endpoint;
  target: Endpoint;
  pools: { source: pg.Pool; target: pg.Pool };
  stores: StateStores;
  close(): Promise<void>;
}

/**
 * Pool sizes: the source serves preflight and the publication; the target holds the pipeline lock
 * for the whole run and serves the state stores, preflight and the resync engine's records.
 */
const SOURCE_POOL = 4;
const TARGET_POOL = 6;

export function wire(config: Config, direction: Direction = "forward"): Wiring {
  const view = directionConfig(config, direction);
  const both = endpoints(view);
  const pools = { source: both.source.pool("pgferry", SOURCE_POOL), target: both.target.pool("pgferry", TARGET_POOL) };
  const stores = postgresStores({ pool: pools.target, schema: view.target.stateSchema, pipeline: view.source.slot });
  let closing: Promise<void> | undefined;
  return {
    ...both,
    pools,
    stores,
    close: () => {
      closing ??= Promise.all([pools.source.end(), pools.target.end()]).then(() => undefined);
      return closing;
    },
  };
}

/** The resync engine on the wiring's resync store, sized from the config. */
export function createResyncEngine(config: Config, wiring: Wiring, log: Logger): ResyncEngine {
  return new ResyncEngine({ store: wiring.stores.resyncs, log: log.child({ module: "resync" }), chunkRows: config.resync.chunkRows, chunkBytes: config.apply.queueMaxBytes });
}

export function createPipeline(
  config: Config,
  wiring: Wiring,
  parts: { log: Logger; observer?: PipelineObserver; resyncs?: ResyncEngine },
  direction: Direction = "forward",
): Pipeline {
  const view = directionConfig(config, direction);
  return new Pipeline({
    config: view,
    original: config,
    bidirectional: bidirectionalParts(config, direction, wiring),
    settings: pipelineSettings(config, direction),
    source: wiring.source,
    target: wiring.target,
    pools: wiring.pools,
    store: wiring.stores.checkpoints,
    log: parts.log,
    observer: parts.observer,
    resyncs: parts.resyncs,
  });
}

/**
 * Both directions configured: this direction judges each keyed change against the destination's own
 * writes (conflicts, recorded in its state) and records its progress for the other direction's judge.
 */
function bidirectionalParts(config: Config, direction: Direction, wiring: Wiring): PipelineOptions["bidirectional"] {
  const opposite = oppositeOf(config, direction);
  if (!opposite || !config.reverse) return undefined;
  const view = directionConfig(config, direction);
  const own = new ConflictLog({ pool: wiring.pools.target, schema: view.target.stateSchema });
  return {
    guard: oppositeGuard({
      direction,
      resolution: config.reverse.conflicts,
      pipeline: view.source.slot,
      stateSchema: view.target.stateSchema,
      opposite,
      source: wiring.pools.source,
    }),
    recordProgress: async (client, checkpoint) => {
      if (checkpoint.commitTime) await own.recordProgress(client, view.source.slot, checkpoint.commitTime, checkpoint.commitMicros);
    },
  };
}

/** A pipeline wired, run until `signal` aborts (or it fails), and unwired: for callers that own no other part. */
export async function runPipeline(
  config: Config,
  parts: { log: Logger; observer?: PipelineObserver; resyncs?: ResyncEngine },
  signal: AbortSignal,
  direction: Direction = "forward",
): Promise<void> {
  const wiring = wire(config, direction);
  try {
    await createPipeline(config, wiring, parts, direction).run(signal);
  } finally {
    await wiring.close();
  }
}
