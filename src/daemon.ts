/**
 * The composition root: the one place that turns a config into running parts. It makes the two
 * endpoints, their pools and the state stores once, narrows the config for each component, and
 * builds the pipeline and the resync engine on them. `pgferry run`, the demo and the tests all wire
 * through here, so a second pipeline (another direction) is another call, not another copy.
 */
import type { Logger } from "pino";
import type { Config } from "./config/index.js";
import { ResyncEngine } from "./pipeline/resync/resyncEngine.js";
import { Pipeline, type PipelineObserver, type PipelineSettings } from "./pipeline/pipeline.js";
import { endpoints, type Endpoint } from "./sql/endpoint.js";
import { postgresStores, type StateStores } from "./state/postgresStores.js";
import type pg from "pg";

/** The config as the pipeline needs it: names, snapshot, stream and retry settings. */
export function pipelineSettings(config: Config): PipelineSettings {
  const { apply } = config;
  return {
    slot: config.source.slot,
    publication: config.source.publication,
    snapshot: { workers: config.snapshot.workers, chunkRows: config.snapshot.chunkRows },
    stream: {
      slot: config.source.slot,
      publication: config.source.publication,
      queueMaxBytes: apply.queueMaxBytes,
      limits: { maxRows: apply.batchMaxRows, maxBytes: apply.batchMaxBytes, maxMs: apply.batchMaxMs },
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

export function wire(config: Config): Wiring {
  const both = endpoints(config);
  const pools = { source: both.source.pool("pgferry", SOURCE_POOL), target: both.target.pool("pgferry", TARGET_POOL) };
  const stores = postgresStores({ pool: pools.target, schema: config.target.stateSchema, pipeline: config.source.slot });
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

export function createPipeline(config: Config, wiring: Wiring, parts: { log: Logger; observer?: PipelineObserver; resyncs?: ResyncEngine }): Pipeline {
  return new Pipeline({
    config,
    settings: pipelineSettings(config),
    source: wiring.source,
    target: wiring.target,
    pools: wiring.pools,
    store: wiring.stores.checkpoints,
    log: parts.log,
    observer: parts.observer,
    resyncs: parts.resyncs,
  });
}

/** A pipeline wired, run until `signal` aborts (or it fails), and unwired: for callers that own no other part. */
export async function runPipeline(config: Config, parts: { log: Logger; observer?: PipelineObserver; resyncs?: ResyncEngine }, signal: AbortSignal): Promise<void> {
  const wiring = wire(config);
  try {
    await createPipeline(config, wiring, parts).run(signal);
  } finally {
    await wiring.close();
  }
}
