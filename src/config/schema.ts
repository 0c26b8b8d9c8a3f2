/**
 * The config file's schema: every key, its default and its bounds (README "Configuration" documents
 * the same). Objects are strict so a misspelt key is an error instead of a silently applied default;
 * sections default to `{}` so a missing section reports its own required keys.
 */
import { z } from "zod";
import { byteSize, connectionUrl, IDENTIFIER, identifier, integer, listenAddress, slotName } from "./fields.js";
import { isLoopbackHost, parseListenAddress } from "./listenAddress.js";
import { tableMappingsSchema } from "./tableMapping.js";

const MiB = 1024 ** 2;

const sourceSchema = z.strictObject({
  url: connectionUrl(),
  slot: slotName().default("pgferry"),
  publication: slotName().default("pgferry"),
});

const targetSchema = z.strictObject({
  url: connectionUrl(),
  stateSchema: identifier().default("_pgferry"),
});

const snapshotSchema = z.strictObject({
  workers: integer(1, 64).default(4),
  chunkRows: integer(1).default(250_000),
  // A table is cut into as many chunks as the larger of rows / chunkRows and bytes (heap + TOAST) /
  // chunkBytes asks for, so a wide table with few rows spreads over the workers too.
  chunkBytes: byteSize().default(32 * MiB),
  format: z.enum(["auto", "binary", "text"]).default("auto"),
  // Secondary indexes (not unique, not backing a constraint) dropped before a table's copy and built
  // once it is in (pipeline/indexDeferral.ts): one sorted build instead of row-by-row maintenance.
  deferIndexes: z.boolean().default(true),
  // maintenance_work_mem of each index build session: an HNSW graph of 50k 1536-d vectors needs ~350 MiB
  // (about 4 × dimensions + 1 KiB a row with m = 16); at most `workers` builds run at once.
  indexBuildMemory: byteSize().pipe(z.number().min(MiB, { error: "must be at least 1MiB (PostgreSQL's minimum)" })).default(512 * MiB),
});

const retrySchema = z
  .strictObject({
    maxAttempts: integer(1).default(10),
    initialDelayMs: integer(0).default(500),
    maxDelayMs: integer(0).default(30_000),
  })
  .superRefine((retry, ctx) => {
    if (retry.maxDelayMs < retry.initialDelayMs) {
      ctx.addIssue({ code: "custom", path: ["maxDelayMs"], message: `must be at least initialDelayMs (${retry.initialDelayMs})`, input: retry.maxDelayMs });
    }
  });

const applySchema = z.strictObject({
  batchMaxRows: integer(1).default(10_000),
  batchMaxBytes: byteSize().default(8 * MiB),
  batchMaxMs: integer(0).default(100),
  queueMaxBytes: byteSize().default(8 * MiB),
  // How the stream carries values (pipeline/streamFormat.ts): binary from pgoutput where every column
  // pgferry reads has a printer (auto), always (binary: refused otherwise) or never (text).
  format: z.enum(["auto", "binary", "text"]).default("auto"),
  // synchronous_commit of the apply session. off (as native subscriptions): the source is
  // acknowledged once the target's WAL flush passes the commit (pipeline/flushedCommits.ts); any
  // other value: once COMMIT returns, which has then flushed it (and waited for synchronous standbys).
  synchronousCommit: z.enum(["off", "local", "remote_write", "on", "remote_apply"]).default("off"),
  onError: z.enum(["retry", "stop"]).default("retry"),
  retry: retrySchema.prefault({}),
});

const controlSchema = z
  .strictObject({
    listen: listenAddress().default("127.0.0.1:9187"),
    adminToken: z.string().min(16).optional(),
    readyMaxLagSeconds: integer(1).default(30),
  })
  .superRefine((control, ctx) => {
    // Off loopback the control API is reachable from the network; resync must not be open to it.
    const address = parseListenAddress(control.listen);
    if (address !== undefined && !isLoopbackHost(address.host) && control.adminToken === undefined) {
      ctx.addIssue({ code: "custom", path: ["adminToken"], message: "required when control.listen is not a loopback address", input: undefined });
    }
  });

const resyncSchema = z.strictObject({
  // Rows per resync chunk: held in memory between the chunk's watermarks.
  chunkRows: integer(1, 1_000_000).default(5000),
});

/**
 * The reverse pipeline (new → old) through the inverse of `tables` (docs/reverse.md). Its slot and
 * publication live on the target (new) database, its state on the source (old) one, next to the data
 * it writes. Its presence also turns on conflict detection in the forward pipeline.
 */
export const CONFLICT_RESOLUTIONS = ["last-writer-wins", "prefer-old", "prefer-new", "stop"] as const;
export type ConflictResolution = (typeof CONFLICT_RESOLUTIONS)[number];

const reverseSchema = z.strictObject({
  slot: slotName().default("pgferry_reverse"),
  publication: slotName().default("pgferry_reverse"),
  stateSchema: identifier().default("_pgferry"),
  conflicts: z.enum(CONFLICT_RESOLUTIONS).default("last-writer-wins"),
  /** The reverse daemon's control server (`pgferry run --direction reverse`), beside the forward one's. */
  listen: listenAddress().default("127.0.0.1:9188"),
});

/** `schema.sequence`, each part an unquoted identifier (as the catalog spells it). */
function qualifiedSequenceName() {
  return z.string().refine((text) => {
    const dot = text.indexOf(".");
    return dot > 0 && IDENTIFIER.test(text.slice(0, dot)) && IDENTIFIER.test(text.slice(dot + 1));
  }, { error: 'expected "schema.sequence"' });
}

/**
 * `pgferry sequences sync` (docs/cutover.md): each new-side sequence behind a key is moved to at least
 * max(the old side's sequence, the column's max) + gap before the switch, so the new project's first
 * insert cannot take a key the old one used. `extra` names sequences the plan does not find (one that
 * feeds a non-key column, such as a legacy id): target on the new database, source on the old one; a
 * target listed several times is set past all its sources. `syncEverySeconds` > 0: `run` repeats the
 * sync while it streams.
 */
const sequencesSchema = z.strictObject({
  gap: integer(0).default(1000),
  extra: z.array(z.strictObject({ target: qualifiedSequenceName(), source: qualifiedSequenceName() })).default([]),
  syncEverySeconds: integer(0).default(0),
});

export type SequencesConfig = z.output<typeof sequencesSchema>;

/** The section's defaults: what a config without `sequences` gets (sequenceSettings). */
export const SEQUENCES_DEFAULTS: SequencesConfig = { gap: 1000, extra: [], syncEverySeconds: 0 };

/** The `sequences` section with every default applied, whether or not the file has one. */
export function sequenceSettings(config: { sequences?: SequencesConfig | undefined }): SequencesConfig {
  return config.sequences ?? SEQUENCES_DEFAULTS;
}

/**
 * `pgferry cutover --check` and the daemon's `pgferry_ready{check}` (src/cutover/readiness.ts): the
 * limits a cutover step is gated on. Optional like `sequences`, read through cutoverSettings.
 */
const cutoverSchema = z.strictObject({
  maxLagSeconds: integer(0).default(5),
  maxRetainedWalBytes: byteSize().default(1024 * MiB),
  verifyMaxAgeSeconds: integer(1).default(3600),
  /** Roles `pgferry cutover` makes read-only on the old database (and `rollback` on the new one), their sessions ended. */
  freezeRoles: z.strictObject({ old: z.array(z.string().min(1)).default([]), new: z.array(z.string().min(1)).default([]) }).prefault({}),
});

export type CutoverConfig = z.output<typeof cutoverSchema>;

export const CUTOVER_DEFAULTS: CutoverConfig = { maxLagSeconds: 5, maxRetainedWalBytes: 1024 * MiB, verifyMaxAgeSeconds: 3600, freezeRoles: { old: [], new: [] } };

/** The `cutover` section with every default applied, whether or not the file has one. */
export function cutoverSettings(config: { cutover?: CutoverConfig | undefined }): CutoverConfig {
  return config.cutover ?? CUTOVER_DEFAULTS;
}

const logSchema = z.strictObject({
  level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  format: z.enum(["auto", "json", "pretty"]).default("auto"),
});

export const configSchema = z.strictObject({
  // `{}` lacks the required url; that is the point: a missing section reports `source.url: required`.
  source: sourceSchema.prefault({} as z.input<typeof sourceSchema>),
  target: targetSchema.prefault({} as z.input<typeof targetSchema>),
  snapshot: snapshotSchema.prefault({}),
  apply: applySchema.prefault({}),
  control: controlSchema.prefault({}),
  resync: resyncSchema.prefault({}),
  log: logSchema.prefault({}),
  reverse: reverseSchema.optional(),
  // Optional (absent: SEQUENCES_DEFAULTS, through sequenceSettings) so that a config without it stays as it was.
  sequences: sequencesSchema.optional(),
  cutover: cutoverSchema.optional(),
  tables: tableMappingsSchema,
}).superRefine((config, ctx) => {
  if (config.reverse && config.reverse.slot === config.source.slot) {
    ctx.addIssue({ code: "custom", path: ["reverse", "slot"], message: `must differ from source.slot (${config.source.slot}): each direction has its own slot and origin`, input: config.reverse.slot });
  }
});

/** The validated config with every default applied; byte sizes are numbers of bytes. */
export type Config = z.output<typeof configSchema>;
