/**
 * A stream session: START_REPLICATION from the checkpoint, reader → sink → queue → apply loop, and
 * the acknowledgements back to the source. One per attempt of the pipeline; `run` resolves when
 * stopped through `signal` and rejects on any error, after rolling back what was not committed
 * (nothing unacknowledged is lost: the slot keeps it).
 */
import type pg from "pg";
import type { Logger } from "pino";
import type { ConflictGuard } from "../apply/conflictGuard.js";
import { Applier } from "../apply/applier.js";
import type { Endpoint } from "../sql/endpoint.js";
import { ReplicationConnection } from "../source/replicationConnection.js";
import { formatLsn } from "../source/lsn.js";
import type { CheckpointStore } from "../state/checkpointStore.js";
import type { Checkpoint } from "../plan/changes.js";
import { ChangeTransformer } from "../transform/changeTransformer.js";
import { loadHooks } from "../transform/codeHook.js";
import type { TablePlan } from "../plan/plan.js";
import { SourceEvaluator } from "../transform/sourceEvaluator.js";
import { ApplyLoop, type AppliedBatch, type BatchLimits } from "./applyLoop.js";
import { ChangeQueue } from "./changeQueue.js";
import type { StreamEvent } from "./streamEvents.js";
import type { ResyncEngine } from "./resync/resyncEngine.js";
import { StreamReader } from "../source/streamReader.js";
import { QueueSink } from "./streamSink.js";
import { binaryStream, describeStreamFormat, type StreamFormat } from "./streamFormat.js";
import { FlushedCommits } from "./flushedCommits.js";
import type { SynchronousCommit } from "../sql/session.js";

/** How often the standby status is sent even when nothing changes (well under wal_sender_timeout). */
const STATUS_INTERVAL_MS = 10_000;
/**
 * While an asynchronous commit is not known flushed and no later commit says so, how often the
 * target's flush position is read (its WAL writer flushes every wal_writer_delay, 200 ms by default).
 */
const FLUSH_POLL_MS = 100;

/** What a session needs of the config, narrowed by the composition root. */
export interface StreamSettings {
  slot: string;
  publication: string;
  /** The queue between the reader and the apply loop, in bytes (the socket pauses above it). */
  queueMaxBytes: number;
  /** apply.format: whether pgoutput sends binary values (streamFormat.ts). */
  format: StreamFormat;
  /** apply.synchronousCommit of the apply session; `off` is acknowledged once flushed (flushedCommits.ts). Default on. */
  synchronousCommit?: SynchronousCommit;
  limits: BatchLimits;
  /**
   * Replication origins whose source transactions are not applied: the apply origins of pgferry's
   * pipelines (`pgferry_<slot>`), so a change a pipeline wrote is not carried back (loop prevention).
   */
  ignoreOrigins?: string[];
  /** The apply session must be tagged with its origin (a pipeline runs the other way), not best effort. */
  requireOrigin?: boolean;
}

export interface StreamSessionOptions {
  source: Endpoint;
  target: Endpoint;
  settings: StreamSettings;
  log: Logger;
  store: CheckpointStore;
  plans: readonly TablePlan[];
  syncLsns: ReadonlyMap<string, bigint>;
  checkpoint: Checkpoint;
  resyncs?: ResyncEngine;
  /** See ApplyLoopOptions.orderedThrough. */
  orderedThrough?: bigint;
  onCommitted?(batch: AppliedBatch): void;
  /** Called once the stream is running (START_REPLICATION accepted). */
  onStreaming?(): void;
  /** Called when the source reports its WAL end in a keepalive, for lag metrics. */
  onServerWalEnd?(walEnd: bigint): void;
  /** Called at the commit of a source transaction left out for its origin, with the row changes it held. */
  onOriginFiltered?(origin: string, changes: number): void;
  /** Both directions running: keyed changes are judged against the destination's own writes (src/apply/conflictGuard.ts). */
  guard?: ConflictGuard;
  /** Both directions running: records, with each checkpoint, how far this pipeline got, for the other direction's guard. */
  recordProgress?(client: pg.ClientBase, checkpoint: Checkpoint): Promise<void>;
}

export class StreamSession {
  private reader: StreamReader | undefined;

  constructor(private readonly options: StreamSessionOptions) {}

  /**
   * The last source position received (0 before the stream starts). After a failure the pipeline
   * may retry in source order up to it (errorPolicy.ts, `orderedRetry`).
   */
  get lastReceived(): bigint {
    return this.reader?.lastReceived ?? 0n;
  }

  async run(signal: AbortSignal): Promise<void> {
    const options = this.options;
    const { log, store, settings } = options;
    const ignoreOrigins = settings.ignoreOrigins ?? [];
    const hooks = await loadHooks(options.plans);
    const evaluator = options.plans.some((p) => p.edges.some((e) => e.evaluated)) ? new SourceEvaluator(options.source) : undefined;
    const transformer = new ChangeTransformer({ evaluator, hooks });
    const applier = await Applier.connect({
      target: options.target,
      applicationName: "pgferry-apply",
      origin: `pgferry_${settings.slot}`,
      requireOrigin: settings.requireOrigin,
      onMissingRows: (table, missing) =>
        log.warn({ table, missing }, "rows updated on the source are not on the target (it lost them, or they never passed a filter); run pgferry verify and resync the table"),
      guard: options.guard,
      synchronousCommit: settings.synchronousCommit,
      writeCheckpoint: async (client, checkpoint) => {
        await store.writeCheckpoint(client, checkpoint);
        await options.recordProgress?.(client, checkpoint);
      },
    });
    let replication: ReplicationConnection | undefined;
    let stopping = false;
    let timer: NodeJS.Timeout | undefined;
    let flushPoll: NodeJS.Timeout | undefined;
    try {
      replication = await ReplicationConnection.connect(options.source, "pgferry-stream");
      const windows = options.resyncs ? await options.resyncs.attach(options.plans, options.source) : undefined;
      const repl = replication;
      let acked = options.checkpoint.endLsn;
      // Asynchronous commits applied but not yet flushed on the target: not acknowledged yet.
      const unflushed = new FlushedCommits();
      const queue = new ChangeQueue<StreamEvent>(settings.queueMaxBytes, (pause) => (pause ? repl.pause() : repl.resume()));
      const sendStatus = (reply = false) => {
        if (stopping) return;
        try {
          repl.sendStatus(reader.lastReceived > acked ? reader.lastReceived : acked, acked, reply);
        } catch (error) {
          log.debug({ err: error }, "standby status not sent (connection closing)");
        }
      };
      /** A position now durable on the target (undefined: none newly so) is acknowledged to the source. */
      const acknowledge = (durable: bigint | undefined) => {
        if (durable === undefined) return;
        acked = durable;
        sendStatus();
      };
      const loop = new ApplyLoop({
        queue,
        target: applier,
        transformer,
        orderedThrough: options.orderedThrough,
        limits: settings.limits,
        guard: options.guard,
        onCommitted: (batch) => {
          acknowledge(batch.wal ? unflushed.committed(batch.checkpoint.endLsn, batch.wal) : batch.checkpoint.endLsn);
          options.onCommitted?.(batch);
        },
      });
      const sink = new QueueSink(queue, windows);
      const reader: StreamReader = new StreamReader({
        plans: options.plans,
        syncLsns: options.syncLsns,
        skipThrough: options.checkpoint.commitLsn,
        sink,
        messages: sink,
        log,
        ignoreOrigins: new Set(ignoreOrigins),
        onOriginFiltered: (origin, changes) => options.onOriginFiltered?.(origin, changes),
        onKeepalive: (walEnd, replyRequested) => {
          options.onServerWalEnd?.(walEnd);
          // Nothing received is waiting to be applied: the server's position can be confirmed, which
          // lets the slot advance past WAL of tables outside the publication.
          const idle = !reader.inTransaction && queue.length === 0 && !loop.busy && !unflushed.pending;
          const advanced = idle && walEnd > acked;
          if (advanced) acked = walEnd;
          if (advanced || replyRequested) sendStatus();
        },
      });
      this.reader = reader;
      timer = setInterval(() => sendStatus(), STATUS_INTERVAL_MS);
      // A quiet stream brings no later commit to say the last ones are flushed: ask the target.
      let polling = false;
      if (settings.synchronousCommit === "off") {
        flushPoll = setInterval(() => {
          if (polling || !unflushed.pending || stopping) return;
          polling = true;
          applier
            .flushedWal()
            .then((flushed) => acknowledge(unflushed.flushed(flushed)))
            // The apply session failing is the apply loop's to report; this read is retried by the next tick.
            .catch((error: unknown) => log.debug({ err: error }, "target flush position not read"))
            .finally(() => { polling = false; });
        }, FLUSH_POLL_MS);
      }

      const onAbort = () => {
        stopping = true;
        log.info("stopping: closing the replication stream, then finishing the current batch");
        void repl.close();
        // A batch that cannot finish (its target connection stalled) must not hold the stop forever:
        // break it off; it rolls back and its changes stay in the slot.
        setTimeout(() => {
          if (loop.busy) {
            log.warn("the current batch did not finish within 30 s of the stop; breaking it off (it stays in the slot)");
            applier.destroy();
          }
        }, 30_000).unref();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) onAbort();

      // Preflight refused a binary format the plans cannot have; auto falls back to text here.
      const { binary } = binaryStream(settings.format, options.plans);
      log.info({ slot: settings.slot, from: formatLsn(options.checkpoint.endLsn), format: binary ? "binary" : "text", ...(ignoreOrigins.length > 0 ? { ignoreOrigins } : {}) }, "streaming");
      if (!binary && settings.format === "auto") log.info(describeStreamFormat(settings.format, options.plans));
      const applying = loop.run().catch((error: unknown) => {
        stopping = true; // an apply failure ends the stream too
        void repl.close();
        throw error;
      });
      const streaming = repl
        .stream(
          { slot: settings.slot, startLsn: options.checkpoint.endLsn, publication: settings.publication, protoVersion: 1, messages: true, skipOriginated: ignoreOrigins.length > 0, binary },
          reader,
          () => options.onStreaming?.(),
        )
        .finally(() => queue.close());
      // The apply loop drains what was received; then the first real failure (apply first) fails the phase.
      const [applied, streamed] = await bothEnded(log, applying, streaming, () => stopping);
      if (applied.status === "rejected") throw applied.reason;
      if (streamed.status === "rejected" && !(stopping && signal.aborted)) throw streamed.reason;
      signal.removeEventListener("abort", onAbort);
    } catch (error) {
      await applier.rollback();
      throw error;
    } finally {
      if (timer) clearInterval(timer);
      if (flushPoll) clearInterval(flushPoll);
      stopping = true;
      await watched(log, "detaching resyncs", options.resyncs?.detach());
      await watched(log, "closing the replication connection", replication?.close());
      await watched(log, "closing the apply session", applier.close());
      await watched(log, "closing the evaluator", evaluator?.close());
    }
  }
}


/** Awaits a shutdown step, saying which one if it takes long (so a stuck stop names its cause). */
async function watched(log: Logger, step: string, work: Promise<void> | undefined): Promise<void> {
  if (!work) return;
  const timer = setInterval(() => log.warn({ step }, "shutdown step still running"), 10_000);
  try {
    await work;
  } finally {
    clearInterval(timer);
  }
}

/** Waits for the apply loop and the stream to end; once stopping, names the one that is still running. */
async function bothEnded(
  log: Logger,
  applying: Promise<void>,
  streaming: Promise<void>,
  isStopping: () => boolean,
): Promise<[PromiseSettledResult<void>, PromiseSettledResult<void>]> {
  const running = { applying: true, streaming: true };
  applying.then(() => { running.applying = false; }, () => { running.applying = false; });
  streaming.then(() => { running.streaming = false; }, () => { running.streaming = false; });
  const timer = setInterval(() => {
    if (isStopping()) log.warn(running, "stopping: still waiting for the stream phase to end");
  }, 10_000);
  try {
    const [applied, streamed] = await Promise.allSettled([applying, streaming]);
    return [applied, streamed];
  } finally {
    clearInterval(timer);
  }
}
