/**
 * The PostgreSQL stores of one pipeline, in the target's state schema: what a composition root
 * builds once and hands to the pipeline, the resync engine, the status poller and the commands.
 */
import type pg from "pg";
import type { CheckpointStore } from "./checkpointStore.js";
import { PostgresCheckpointStore } from "./postgresCheckpointStore.js";
import { PostgresResyncStore } from "./postgresResyncStore.js";
import type { ResyncStore } from "./resyncStore.js";

export interface StateStores {
  checkpoints: CheckpointStore;
  resyncs: ResyncStore;
}

export interface PostgresStoresOptions {
  /** A pool on the target. */
  pool: pg.Pool;
  /** The state schema (target.stateSchema). */
  schema: string;
  /** The pipeline: its replication slot's name. */
  pipeline: string;
}

export function postgresStores(options: PostgresStoresOptions): StateStores {
  return { checkpoints: new PostgresCheckpointStore(options), resyncs: new PostgresResyncStore(options) };
}
