/**
 * Reads the pgoutput stream: decodes each message, maps row changes through the plan, and queues
 * them for the applier with a commit marker after each source transaction. Transactions already
 * applied (commit LSN at or before the checkpoint) are skipped, and so are a table's changes that its
 * snapshot copy already contains (commit LSN before the table's sync LSN).
 */
import type { Logger } from "pino";
import { PgoutputDecoder } from "../source/pgoutput/decoder.js";
import { pgMicrosToDate, UNCHANGED_TOAST, type Relation } from "../source/pgoutput/messages.js";
import type { StreamHandler } from "../source/replicationConnection.js";
import type { SourceChange } from "../plan/changes.js";
import type { TablePlan } from "../plan/plan.js";
import { RelationLayout } from "../transform/relationLayout.js";
import { PgferryError } from "../errors.js";
import type { ResyncWindows } from "./resync/resyncWindows.js";
import { decodeWatermark, WATERMARK_PREFIX } from "./resync/watermarks.js";
import type { ChangeQueue } from "./changeQueue.js";
import { changeBytes, type StreamEvent } from "./streamEvents.js";

export interface StreamReaderOptions {
  plans: readonly TablePlan[];
  /** Per source table id: changes committed before this LSN are in its copy already. */
  syncLsns: ReadonlyMap<string, bigint>;
  /** Commit LSN of the checkpoint: transactions at or before it were applied. */
  skipThrough: bigint;
  queue: ChangeQueue<StreamEvent>;
  log: Logger;
  onKeepalive(walEnd: bigint, replyRequested: boolean): void;
  /** Open resync windows: their watermarks arrive as logical messages in the stream. */
  resyncs?: ResyncWindows;
}

interface OpenTransaction {
  commitLsn: bigint;
  skip: boolean;
}

export class StreamReader implements StreamHandler {
  /** Highest WAL position the server has told us about. */
  lastReceived = 0n;
  private readonly decoder = new PgoutputDecoder();
  private readonly plansByName = new Map<string, TablePlan>();
  private readonly layouts = new Map<number, RelationLayout>();
  private readonly unmapped = new Set<number>();
  private transaction: OpenTransaction | undefined;

  constructor(private readonly options: StreamReaderOptions) {
    for (const plan of options.plans) this.plansByName.set(`${plan.source.schema}.${plan.source.name}`, plan);
  }

  /** Whether a source transaction has begun but its commit has not arrived yet. */
  get inTransaction(): boolean {
    return this.transaction !== undefined;
  }

  onKeepalive(walEnd: bigint, replyRequested: boolean): void {
    if (walEnd > this.lastReceived) this.lastReceived = walEnd;
    this.options.onKeepalive(walEnd, replyRequested);
  }

  onXLogData(_walStart: bigint, walEnd: bigint, payload: Buffer): void {
    if (walEnd > this.lastReceived) this.lastReceived = walEnd;
    const message = this.decoder.decode(payload);
    switch (message.tag) {
      case "begin":
        this.transaction = { commitLsn: message.finalLsn, skip: message.finalLsn <= this.options.skipThrough };
        return;
      case "commit": {
        const transaction = this.transaction;
        this.transaction = undefined;
        if (transaction && !transaction.skip) {
          this.options.queue.push(
            { type: "commit", commitLsn: message.commitLsn, endLsn: message.endLsn, commitTime: pgMicrosToDate(message.commitTimeMicros) },
            64,
          );
        }
        return;
      }
      case "relation":
        this.onRelation(message.relation);
        return;
      case "insert": {
        const layout = this.layoutFor(message.relation.oid);
        if (layout) this.enqueue({ type: "change", plan: layout.plan, op: "insert", old: null, oldIsFullRow: false, new: layout.project(message.new) });
        return;
      }
      case "update": {
        const layout = this.layoutFor(message.relation.oid);
        if (!layout) return;
        const old = message.old ? layout.project(message.old) : null;
        this.enqueue({ type: "change", plan: layout.plan, op: "update", old, oldIsFullRow: message.oldKind === "O", new: layout.project(message.new) });
        return;
      }
      case "delete": {
        const layout = this.layoutFor(message.relation.oid);
        if (layout) this.enqueue({ type: "change", plan: layout.plan, op: "delete", old: layout.project(message.old), oldIsFullRow: message.oldKind === "O", new: null });
        return;
      }
      case "truncate": {
        const plans = message.relations.flatMap((r) => {
          const layout = this.layoutFor(r.oid);
          return layout ? [layout.plan] : [];
        });
        if (plans.length > 0) this.options.queue.push({ type: "truncate", plans }, 128);
        return;
      }
      case "stream_start":
      case "stream_stop":
      case "stream_commit":
      case "stream_abort":
        // Only asked for with protocol 2 and `streaming 'on'`, which pgferry does not request.
        throw new PgferryError("protocol", `unexpected ${message.tag} message: pgferry streams with protocol version 1`);
      case "message":
        this.onMessage(message.prefix, message.content);
        return;
      default:
        // Type and Origin carry nothing to apply here.
        return;
    }
  }

  private onRelation(relation: Relation): void {
    const plan = this.plansByName.get(`${relation.namespace}.${relation.name}`);
    this.layouts.delete(relation.oid);
    this.unmapped.delete(relation.oid);
    if (!plan) {
      this.unmapped.add(relation.oid);
      // pgoutput describes each leaf partition as well as the root it publishes changes as.
      this.options.log.debug({ table: `${relation.namespace}.${relation.name}` }, "relation not in the mapping (a partition published via its root); ignored");
      return;
    }
    const layout = new RelationLayout(plan, relation, UNCHANGED_TOAST);
    if (layout.ignoredColumns.length > 0) {
      this.options.log.warn({ table: plan.id, columns: layout.ignoredColumns }, "source columns not in the mapping are ignored");
    }
    this.layouts.set(relation.oid, layout);
  }

  /** The layout for a relation, or undefined when this transaction's change to it must be skipped. */
  private layoutFor(oid: number): RelationLayout | undefined {
    const transaction = this.transaction;
    if (!transaction) throw new PgferryError("protocol", `row change for relation ${oid} outside a transaction (no Begin before it)`);
    if (transaction.skip || this.unmapped.has(oid)) return undefined;
    const layout = this.layouts.get(oid);
    if (!layout) return undefined;
    const syncLsn = this.options.syncLsns.get(layout.plan.id);
    if (syncLsn !== undefined && transaction.commitLsn < syncLsn) return undefined;
    return layout;
  }

  private enqueue(change: SourceChange): void {
    this.options.resyncs?.track(change.plan, change);
    this.options.queue.push(change, changeBytes(change));
  }

  private onMessage(prefix: string, content: Buffer): void {
    const windows = this.options.resyncs;
    if (prefix !== WATERMARK_PREFIX || !windows || !this.transaction || this.transaction.skip) return;
    const mark = decodeWatermark(content);
    if (!mark) return;
    if (mark.mark === "low") {
      windows.onLow(mark);
      return;
    }
    const chunk = windows.onHigh(mark);
    if (!chunk) return; // a watermark from before a restart: its resync resumes with a new attempt
    for (const change of chunk.changes) this.options.queue.push(change, changeBytes(change));
    this.options.queue.push(chunk.end, 256);
  }
}
