/**
 * The pipeline between two endpoints with a compiled plan: preflight → setup (state, publication,
 * slot) → snapshot of the tables not yet copied → a stream session, retried with backoff on
 * transient failures. Every (re)start takes the same path from the state in the target, so a crash
 * at any moment resumes correctly. It is handed its endpoints, pools, store and narrowed settings
 * (src/daemon.ts wires them); it opens no connection from a URL.
 */
import pg from "pg";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import type { Direction } from "../config/directions.js";
import { PgferryError } from "../errors.js";
import { describeUrl } from "../redact.js";
import { formatLsn } from "../source/lsn.js";
import { ReplicationConnection } from "../source/replicationConnection.js";
import type { CheckpointStore } from "../state/checkpointStore.js";
import { DeferredIndexStore } from "../state/deferredIndexes.js";
import type { Endpoint } from "../sql/endpoint.js";
import type { TablePlan } from "../plan/plan.js";
import type { AppliedBatch } from "./applyLoop.js";
import { backoffMs, classify, privilegeError, roleOf } from "./errorPolicy.js";
import { preflight } from "./preflight.js";
import { raiseNewSideSequences } from "./keyRanges.js";
import { ensurePublication } from "./publication.js";
import { IndexDeferral } from "./indexDeferral.js";
import { runSnapshot } from "./snapshotPhase.js";
import type { ResyncEngine } from "./resync/resyncEngine.js";
import { StreamSession, type StreamSessionOptions, type StreamSettings } from "./streamSession.js";

type PublicationResult = Awaited<ReturnType<typeof ensurePublication>>;

export type Phase = "starting" | "standby" | "preflight" | "snapshot" | "streaming" | "retrying" | "stopped" | "failed";

/** What the pipeline reports as it runs; metrics and the status API subscribe (issue: operations). */
export interface PipelineObserver {
  phase?(phase: Phase): void;
  batchApplied?(batch: AppliedBatch): void;
  rowsCopied?(table: string, rows: number): void;
  serverWalEnd?(lsn: bigint): void;
  error?(kind: string, error: unknown): void;
  /** A source transaction the other direction wrote (its origin) was dropped, with its row changes: each change makes one trip. */
  originFiltered?(origin: string, changes: number): void;
}

/** What the pipeline needs of the config besides the mapping, narrowed by the composition root. */
export interface PipelineSettings {
  /** Which way this pipeline runs (src/config/directions.ts); the reverse compiles the inverse plan. */
  direction: Direction;
  slot: string;
  publication: string;
  /** The target's state schema (target.stateSchema): where deferred index definitions are recorded. */
  stateSchema: string;
  /**
   * `copy`: tables not yet copied are copied under the slot's snapshot. `none` (the reverse): the
   * databases are already in sync through the forward pipeline, so every table is ready at the slot's
   * consistent point and only changes made after it are carried.
   */
  snapshot: {
    mode: "copy" | "none"; workers: number; chunkRows: number; chunkBytes: number;
    /** Drop a copied table's secondary indexes before its rows and build them after (indexDeferral.ts). */
    deferIndexes: boolean;
    /** maintenance_work_mem of an index build session, in bytes. */
    indexBuildMemory: number;
  };
  stream: StreamSettings;
  retry: { maxAttempts: number; initialDelayMs: number; maxDelayMs: number };
  onError: "retry" | "stop";
}

export interface PipelineOptions {
  /** The config as this direction sees it (directionConfig), for preflight alone (it checks the mapping and every setting it names). */
  config: Config;
  /** The config as written (both directions), for the reverse's checks of the forward pipeline; defaults to `config`. */
  original?: Config;
  settings: PipelineSettings;
  source: Endpoint;
  target: Endpoint;
  /** Pools on both endpoints, owned by the caller (they outlive attempts). */
  pools: { source: pg.Pool; target: pg.Pool };
  store: CheckpointStore;
  log: Logger;
  observer?: PipelineObserver;
  /** Per-table resync while streaming (see resync/resyncEngine.ts); attached to each stream session. */
  resyncs?: ResyncEngine;
  /** Both directions running: conflict detection and progress records (src/daemon.ts builds them). */
  bidirectional?: Pick<StreamSessionOptions, "guard" | "recordProgress">;
}

/** A stretch of healthy streaming after which the retry budget starts over. */
const HEALTHY_MS = 60_000;
/** How often a standby asks for the pipeline lock again. */
const STANDBY_POLL_MS = 2_000;

export class Pipeline {
  private readonly config: Config;
  private readonly original: Config;
  private readonly settings: PipelineSettings;
  private readonly source: Endpoint;
  private readonly target: Endpoint;
  private readonly pools: PipelineOptions["pools"];
  private readonly store: CheckpointStore;
  private readonly log: Logger;
  private readonly observer: PipelineObserver;
  private readonly resyncs: ResyncEngine | undefined;
  private readonly bidirectional: PipelineOptions["bidirectional"];
  /** After a unique violation: apply in source order up to this LSN on the next attempts. */
  private orderedThrough: bigint | undefined;
  /** The current (or last) attempt's stream session, for the position it had received when it failed. */
  private session: StreamSession | undefined;

  constructor(options: PipelineOptions) {
    this.config = options.config;
    this.original = options.original ?? options.config;
    this.settings = options.settings;
    this.source = options.source;
    this.target = options.target;
    this.pools = options.pools;
    this.store = options.store;
    this.log = options.log;
    this.observer = options.observer ?? {};
    this.resyncs = options.resyncs;
    this.bidirectional = options.bidirectional;
  }

  /**
   * Runs until `signal` aborts (resolves) or a failure that retrying cannot fix (rejects); see
   * errorPolicy.ts. An outage (a database down, restarting, unreachable) is retried for as long as
   * it lasts; other transient failures and refused changes up to `apply.retry.maxAttempts` in a row.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { retry } = this.settings;
    const roles = { source: roleOf(this.source.url), target: roleOf(this.target.url) };
    let failures = 0; // in a row, of any class: the backoff grows with it (capped at retry.maxDelayMs)
    let counted = 0; // in a row, those bounded by retry.maxAttempts (an outage is not)
    let failingSince = 0;
    for (;;) {
      const started = Date.now();
      try {
        await this.runOnce(signal);
        this.observer.phase?.("stopped");
        return;
      } catch (caught) {
        if (signal.aborted) {
          this.observer.phase?.("stopped");
          return;
        }
        const verdict = classify(caught, { roles });
        const error = verdict.class === "privilege" ? privilegeError(caught, verdict) : caught;
        const received = this.session?.lastReceived ?? 0n;
        if (verdict.orderedRetry && received > (this.orderedThrough ?? 0n)) {
          // Already ordered through there and still refused: a real conflict; keep the marker anyway.
          this.orderedThrough = received;
        }
        this.observer.error?.(verdict.kind, error);
        if (Date.now() - started > HEALTHY_MS) {
          failures = 0;
          counted = 0;
        }
        if (failures === 0) failingSince = Date.now();
        failures += 1;
        if (verdict.bounded) counted += 1;
        // `apply.onError: stop` is about the target refusing a change; an outage is always retried.
        const stopOnRejected = verdict.class === "rejected" && this.settings.onError === "stop";
        if (verdict.disposition === "stop" || stopOnRejected || counted > retry.maxAttempts) {
          this.observer.phase?.("failed");
          throw error;
        }
        const delay = backoffMs(failures, retry.initialDelayMs, retry.maxDelayMs);
        const fields = { err: error, kind: verdict.kind, reason: verdict.reason, attempt: failures, failingForSeconds: Math.round((Date.now() - failingSince) / 1000), delayMs: delay };
        if (verdict.class === "outage") {
          // Not bounded: a restart, failover or maintenance window lasts as long as it lasts. One line
          // per attempt, at most one per retry.maxDelayMs; errors and phase are exported meanwhile.
          this.log.warn(fields, "database unavailable (transient failure); retrying until it is back, then resuming from the checkpoint");
        } else {
          this.log.warn({ ...fields, counted, maxAttempts: retry.maxAttempts }, "transient failure; restarting from the checkpoint");
        }
        this.observer.phase?.("retrying");
        await sleep(delay, signal);
        if (signal.aborted) {
          this.observer.phase?.("stopped");
          return;
        }
      }
    }
  }

  /**
   * One attempt. Losing the connection that holds the pipeline lock ends the attempt (another
   * instance may take the slot over), as a transient failure.
   */
  private async runOnce(outer: AbortSignal): Promise<void> {
    const inner = new AbortController();
    const forward = () => inner.abort();
    outer.addEventListener("abort", forward, { once: true });
    if (outer.aborted) inner.abort();
    let lockLost: Error | undefined;
    try {
      await this.attempt(inner.signal, (lock) => {
        lock.on("error", (error) => {
          lockLost = error;
          inner.abort();
        });
      });
    } catch (error) {
      if (!lockLost) throw error;
    } finally {
      outer.removeEventListener("abort", forward);
    }
    if (lockLost && !outer.aborted) {
      throw new PgferryError("connection", `lost the target connection holding the pipeline lock: ${lockLost.message}`, { cause: lockLost });
    }
  }

  private async attempt(signal: AbortSignal, watchLock: (lock: pg.PoolClient) => void): Promise<void> {
    const { config, settings, log, store } = this;
    const { source, target } = this.pools;
    // Start-up steps that do not depend on each other run side by side (each is a round trip or a
    // new connection); the log's "started" line says how long start-up took.
    const startedAt = performance.now();
    // Settles to the error to throw, if any: the target's is reported first, as before.
    const sourceDown = source.query("SELECT 1").then(
      () => undefined,
      (error: unknown) => unreachable(this.source, error),
    );
    const lock = await target.connect().catch((error: unknown) => {
      throw unreachable(this.target, error);
    });
    watchLock(lock);
    // Indexes dropped for a copy (this attempt's or an earlier one's) are built again once their table is copied.
    const indexes = new IndexDeferral({
      target: this.target,
      pool: target,
      store: new DeferredIndexStore({ schema: settings.stateSchema, pipeline: settings.slot }),
      buildMemory: settings.snapshot.indexBuildMemory,
      concurrency: settings.snapshot.workers,
      log: log.child({ module: "indexes" }),
      signal,
    });
    try {
      const down = await sourceDown;
      if (down) throw down;
      if (!(await this.acquireLock(lock, signal))) return;
      this.observer.phase?.("preflight");
      const checked = await preflight(config, source, target, { direction: settings.direction, original: this.original });
      const plans = checked.plans;
      // Every path needs the publication; it is made while the state is read (the slot, created
      // later, waits for it: docs/design.md, rule 1). Handled here so a failure first met elsewhere
      // is not an unhandled rejection; awaiting it still throws.
      const publication = ensurePublication(source, settings.publication, plans);
      publication.catch(() => undefined);
      await Promise.all([
        store.migrate(),
        // Before the new side takes its first write: its key sequences move into their own range.
        settings.direction === "reverse" ? raiseNewSideSequences(source, plans, log) : undefined,
      ]);
      let state = await store.load();
      if (state === null) {
        if (checked.slotExists) {
          // A slot without state: a previous start died between creating the slot and recording it.
          // Nothing depends on it, so it is replaced by a fresh one.
          log.warn({ slot: settings.slot }, "slot exists but the target has no state for it; dropping it and starting with a fresh snapshot");
          await source.query("SELECT pg_drop_replication_slot($1)", [settings.slot]);
        }
        await this.initialSnapshot(store, plans, publication, signal, startedAt, indexes);
        state = await store.load();
        if (state === null) throw new PgferryError("state", "pipeline state vanished after the snapshot");
      } else {
        if (!checked.slotExists) {
          throw new PgferryError("state", `replication slot ${settings.slot} is gone but the target has pipeline state (checkpoint ${formatLsn(state.checkpoint.endLsn)})`, {
            hint: "the source WAL since the checkpoint is lost; run `pgferry slot drop` to reset the state, then start again for a fresh snapshot",
          });
        }
        await this.resumeSnapshot(store, plans, publication, signal, startedAt, indexes);
      }
      if (signal.aborted) return;
      const tables = await store.tables();
      const syncLsns = new Map(tables.flatMap((t) => (t.syncLsn === null ? [] : [[t.table, t.syncLsn] as const])));

      const session = (this.session = new StreamSession({
        source: this.source,
        target: this.target,
        settings: settings.stream,
        log: log.child({ module: "stream" }),
        store,
        plans,
        syncLsns,
        checkpoint: state.checkpoint,
        resyncs: this.resyncs,
        orderedThrough: this.orderedThrough,
        // Streaming once the source accepted START_REPLICATION and resyncs are attached.
        onStreaming: () => this.observer.phase?.("streaming"),
        onCommitted: (batch) => this.observer.batchApplied?.(batch),
        onServerWalEnd: (lsn) => this.observer.serverWalEnd?.(lsn),
        onOriginFiltered: (origin, changes) => this.observer.originFiltered?.(origin, changes),
        ...this.bidirectional,
      }));
      await session.run(signal);
    } finally {
      // An attempt that ends early cancels the builds it started; their records stay for the next one.
      await indexes.stop();
      // Unlocked explicitly, so a standby can take over at once rather than when the server notices
      // the closed connection; a broken connection has lost the lock anyway.
      await lock.query("SELECT pg_advisory_unlock_all()").catch(() => undefined);
      lock.release(true);
    }
  }

  /**
   * One pipeline per slot: the pipeline lock is a session advisory lock in the target. A second
   * instance waits for it as a standby (phase `standby`, not ready) instead of fighting over the
   * slot, without spending its retry budget. False when stopped while waiting.
   */
  private async acquireLock(lock: pg.PoolClient, signal: AbortSignal): Promise<boolean> {
    const { slot } = this.settings;
    for (let waiting = false; !signal.aborted; waiting = true) {
      const { rows } = await lock.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtext('pgferry:' || $1)) AS locked", [slot]);
      if (rows[0]?.locked) {
        if (waiting) this.log.info({ slot }, "pipeline lock acquired; taking over");
        return true;
      }
      if (!waiting) {
        this.log.info({ slot }, "another pgferry instance holds the lock for this slot; waiting as a standby");
        this.observer.phase?.("standby");
      }
      await sleep(STANDBY_POLL_MS, signal);
    }
    return false;
  }

  /**
   * First start: publication, then the slot with an exported snapshot, then every table copied
   * under it. The replication connection opens while the publication is made; the slot waits for
   * the publication (docs/design.md, rule 1).
   */
  private async initialSnapshot(store: CheckpointStore, plans: TablePlan[], publishing: Promise<PublicationResult>, signal: AbortSignal, startedAt: number, indexes: IndexDeferral): Promise<void> {
    const { settings, log } = this;
    const [publication, replication] = await settledBoth(publishing, ReplicationConnection.connect(this.source, "pgferry-setup"));
    try {
      log.info({ publication: settings.publication, result: publication }, "publication ready");
      const slot = await replication.createSlot(settings.slot, { temporary: false, exportSnapshot: true });
      log.info({ slot: slot.slotName, consistentPoint: formatLsn(slot.consistentPoint) }, "replication slot created");
      await store.create(slot.consistentPoint, plans.map((p) => p.id));
      log.info({ startupSeconds: secondsSince(startedAt) }, "started: state and slot ready");
      if (settings.snapshot.mode === "none") {
        await this.readyWithoutCopy(store, plans, slot.consistentPoint);
        return;
      }
      // Records left by a pipeline whose state was reset (`slot drop`) wait for their table's new copy.
      const copying = targetsOf(plans);
      await this.copyAndRestore(indexes, { copying, mapped: copying }, () =>
        this.copy(store, plans, slot.snapshotName!, slot.consistentPoint, replication, signal, indexes, new Set()),
      );
    } finally {
      await replication.close();
    }
  }

  /** Restart: tables not ready (interrupted, or new in the config) are copied under a fresh snapshot. */
  private async resumeSnapshot(store: CheckpointStore, plans: TablePlan[], publishing: Promise<PublicationResult>, signal: AbortSignal, startedAt: number, indexes: IndexDeferral): Promise<void> {
    const { settings, log } = this;
    const [tables, publication] = await Promise.all([store.addTables(plans.map((p) => p.id)).then(() => store.tables()), publishing]);
    const ready = new Set(tables.filter((t) => t.state === "ready").map((t) => t.table));
    const pending = plans.filter((p) => !ready.has(p.id));
    if (publication !== "unchanged") log.info({ publication: settings.publication, result: publication }, "publication updated");
    log.info({ startupSeconds: secondsSince(startedAt), pending: pending.length }, "started: state loaded");
    const copying = settings.snapshot.mode === "copy" ? targetsOf(pending) : new Set<string>();
    const scope = { copying, mapped: targetsOf(plans), live: targetsOf(plans.filter((p) => ready.has(p.id))) };
    // The indexes of tables copied before the last stop are built while the others are copied.
    await this.copyAndRestore(indexes, scope, () => this.copyPending(store, pending, signal, indexes, scope.live));
  }

  /** Runs `copy` while the recorded indexes of tables not being copied are built; both must succeed. */
  private async copyAndRestore(indexes: IndexDeferral, scope: { copying: ReadonlySet<string>; mapped: ReadonlySet<string> }, copy: () => Promise<void>): Promise<void> {
    const restoring = indexes.restore(scope.copying, scope.mapped);
    restoring.catch(() => undefined);
    await copy();
    await restoring;
  }

  private async copyPending(store: CheckpointStore, pending: TablePlan[], signal: AbortSignal, indexes: IndexDeferral, live: ReadonlySet<string>): Promise<void> {
    const { settings, log } = this;
    if (pending.length === 0) return;
    if (settings.snapshot.mode === "none") {
      // Carried from here on: rows the new side had before are not copied back (docs/reverse.md).
      log.warn({ tables: pending.map((p) => p.id) }, "tables new in the reverse plan carry changes from now on; rows they already hold are not copied back");
      await this.readyWithoutCopy(store, pending, 0n);
      return;
    }
    log.info({ tables: pending.map((p) => p.id) }, "copying tables that are not ready under a new snapshot");
    const replication = await ReplicationConnection.connect(this.source, "pgferry-setup");
    try {
      // A temporary slot only to get a snapshot and its LSN: the main stream skips these tables' changes before it.
      const slot = await replication.createSlot(`${settings.slot}_sync_${process.pid}`, { temporary: true, exportSnapshot: true });
      await this.copy(store, pending, slot.snapshotName!, slot.consistentPoint, replication, signal, indexes, live);
    } finally {
      await replication.close();
    }
  }

  /** Snapshot mode `none`: every table is ready at `syncLsn` without a copy (the two sides are in sync already). */
  private async readyWithoutCopy(store: CheckpointStore, plans: readonly TablePlan[], syncLsn: bigint): Promise<void> {
    for (const plan of plans) {
      await store.startCopy(plan.id, 0);
      await store.finishCopy(plan.id, syncLsn);
    }
    this.log.info({ tables: plans.length }, "tables ready without a copy: the reverse pipeline carries changes made after its slot was created");
  }

  private async copy(
    store: CheckpointStore, plans: TablePlan[], snapshotName: string, syncLsn: bigint, replication: ReplicationConnection, signal: AbortSignal,
    indexes: IndexDeferral, live: ReadonlySet<string>,
  ): Promise<void> {
    this.observer.phase?.("snapshot");
    await runSnapshot(
      {
        source: this.source,
        target: this.target,
        workers: this.settings.snapshot.workers,
        chunkRows: this.settings.snapshot.chunkRows,
        chunkBytes: this.settings.snapshot.chunkBytes,
        log: this.log.child({ module: "snapshot" }),
        store,
        plans,
        snapshotName,
        syncLsn,
        onSnapshotImported: () => replication.close(),
        onRowsCopied: (table, rows) => this.observer.rowsCopied?.(table, rows),
        indexes: { deferral: indexes, defer: this.settings.snapshot.deferIndexes, live },
      },
      signal,
    );
  }
}

/** The target tables (ids `schema.table`) the plans feed. */
function targetsOf(plans: readonly TablePlan[]): Set<string> {
  return new Set(plans.flatMap((p) => p.edges.map((e) => e.table.id)));
}

function unreachable(endpoint: Endpoint, error: unknown): PgferryError {
  // A refused or dropped connection is an outage, retried; a missing CONNECT grant is a privilege
  // error; a rejected password, an unknown database or a certificate that does not verify stop.
  const { side, url } = endpoint;
  const verdict = classify(error, { side, roles: { [side]: roleOf(url) } });
  const message = `cannot reach the ${side} database ${describeUrl(url)}: ${(error as Error).message}`;
  if (verdict.class === "privilege") return new PgferryError("privilege", message, { cause: error, hint: verdict.hint });
  return new PgferryError(verdict.disposition === "retry" ? "connection" : "preflight", message, {
    cause: error,
    hint: `check ${side}.url, the network and that the server is up`,
  });
}

/** Both values once both settle; the first failure otherwise, after closing a connection that did open. */
async function settledBoth<A>(first: Promise<A>, second: Promise<ReplicationConnection>): Promise<[A, ReplicationConnection]> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === "fulfilled" && b.status === "fulfilled") return [a.value, b.value];
  if (b.status === "fulfilled") await b.value.close();
  throw a.status === "rejected" ? a.reason : (b as PromiseRejectedResult).reason;
}

function secondsSince(started: number): number {
  return Number(((performance.now() - started) / 1000).toFixed(3));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
