/**
 * Reads the pgoutput stream forward, in one direction: decodes each message, projects the row
 * changes of mapped tables onto their plan's source columns, and pushes them, with a commit after
 * each source transaction, into a ChangeSink. Transactions already applied (commit LSN at or before
 * the checkpoint) are skipped, and so are a table's changes that its snapshot copy already contains
 * (commit LSN before the table's sync LSN). Logical decoding messages of the transactions it delivers
 * go to a LogicalMessageListener (the pipeline's resync watermarks). The reader knows nothing of
 * what is done with either: the pipeline implements both interfaces and wires them.
 *
 * With two pipelines running in opposite directions, each apply session tags its writes with a
 * replication origin; a transaction carrying one of `ignoreOrigins` was written by pgferry itself and
 * must not travel back. PostgreSQL 15 announces the origin in an Origin message right after Begin;
 * such a transaction is still committed to the sink (with no changes), so the checkpoint moves past
 * it and the slot releases its WAL. (On 16+ the server leaves them out already, replicationConnection.ts
 * `skipOriginated`; this filter stays on as the one that holds on every version.)
 */
import type { Logger } from "pino";
import type { SourceChange, SourceCommit, SourceTruncate } from "../plan/changes.js";
import type { TablePlan } from "../plan/plan.js";
import { PgferryError } from "../errors.js";
import { PgoutputDecoder } from "./pgoutput/decoder.js";
import { pgMicrosToDate, type Relation } from "./pgoutput/messages.js";
import type { StreamHandler } from "./replicationConnection.js";
import { RelationLayout } from "./relationLayout.js";

/** Where the reader delivers source changes, in stream order. Calls must not throw for ordinary input. */
export interface ChangeSink {
  /** A row change of a mapped table, projected onto its plan's `sourceColumns`. */
  change(change: SourceChange): void;
  /** A TRUNCATE of one or more mapped tables (only the mapped ones are listed). */
  truncate(truncate: SourceTruncate): void;
  /** The end of a source transaction that was not skipped (even when none of its changes were mapped). */
  commit(commit: SourceCommit): void;
}

/** Logical decoding messages (`pg_logical_emit_message`) inside a transaction that is not skipped. */
export interface LogicalMessageListener {
  message(prefix: string, content: Buffer): void;
}

export interface StreamReaderOptions {
  /** The mapped source tables: which relations are read, and which of their columns (`sourceColumns`). */
  plans: readonly TablePlan[];
  /** Per plan id: changes committed before this LSN are in its copy already. */
  syncLsns: ReadonlyMap<string, bigint>;
  /** Commit LSN of the checkpoint: transactions at or before it were applied. */
  skipThrough: bigint;
  sink: ChangeSink;
  /** Receives logical decoding messages (resync watermarks); without it they are ignored. */
  messages?: LogicalMessageListener;
  log: Logger;
  onKeepalive(walEnd: bigint, replyRequested: boolean): void;
  /** Replication origins whose transactions are not delivered: pgferry's own apply sessions (loop prevention). */
  ignoreOrigins?: ReadonlySet<string>;
  /**
   * At the commit of a transaction left out for its origin: how many row changes it held that would
   * otherwise have been delivered (so each change is seen to make exactly one trip).
   */
  onOriginFiltered?(origin: string, changes: number): void;
}

interface OpenTransaction {
  commitLsn: bigint;
  /** From Begin; one Date shared by the transaction's changes. */
  commitTime: Date;
  skip: boolean;
  /** Set by an Origin message naming an ignored origin: nothing more of the transaction is delivered. */
  ignoredOrigin?: string;
  /** Row changes left out for that origin. */
  filtered: number;
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
    const sink = this.options.sink;
    switch (message.tag) {
      case "begin":
        this.transaction = {
          commitLsn: message.finalLsn,
          commitTime: pgMicrosToDate(message.commitTimeMicros),
          skip: message.finalLsn <= this.options.skipThrough,
          filtered: 0,
        };
        return;
      case "origin":
        this.onOrigin(message.name);
        return;
      case "commit": {
        const transaction = this.transaction;
        this.transaction = undefined;
        if (transaction && !transaction.skip) {
          sink.commit({ type: "commit", commitLsn: message.commitLsn, endLsn: message.endLsn, commitTime: pgMicrosToDate(message.commitTimeMicros), commitMicros: message.commitTimeMicros });
          if (transaction.ignoredOrigin !== undefined) this.options.onOriginFiltered?.(transaction.ignoredOrigin, transaction.filtered);
        }
        return;
      }
      case "relation":
        this.onRelation(message.relation);
        return;
      case "insert": {
        const layout = this.rowLayoutFor(message.relation.oid);
        if (layout) sink.change({ type: "change", plan: layout.plan, op: "insert", old: null, oldIsFullRow: false, new: layout.project(message.new), commitTime: this.commitTime });
        return;
      }
      case "update": {
        const layout = this.rowLayoutFor(message.relation.oid);
        if (!layout) return;
        const old = message.old ? layout.project(message.old) : null;
        sink.change({ type: "change", plan: layout.plan, op: "update", old, oldIsFullRow: message.oldKind === "O", new: layout.project(message.new), commitTime: this.commitTime });
        return;
      }
      case "delete": {
        const layout = this.rowLayoutFor(message.relation.oid);
        if (layout) sink.change({ type: "change", plan: layout.plan, op: "delete", old: layout.project(message.old), oldIsFullRow: message.oldKind === "O", new: null, commitTime: this.commitTime });
        return;
      }
      case "truncate": {
        const plans = message.relations.flatMap((r) => {
          const layout = this.layoutFor(r.oid);
          return layout ? [layout.plan] : [];
        });
        if (plans.length > 0 && this.transaction?.ignoredOrigin === undefined) sink.truncate({ type: "truncate", plans });
        return;
      }
      case "stream_start":
      case "stream_stop":
      case "stream_commit":
      case "stream_abort":
        // Only asked for with protocol 2 and `streaming 'on'`, which pgferry does not request.
        throw new PgferryError("protocol", `unexpected ${message.tag} message: pgferry streams with protocol version 1`);
      case "message":
        if (this.transaction && !this.transaction.skip && this.transaction.ignoredOrigin === undefined) this.options.messages?.message(message.prefix, message.content);
        return;
      default:
        // Type carries nothing to apply here.
        return;
    }
  }

  /** The open transaction's commit time (only called once layoutFor has checked there is one). */
  private get commitTime(): Date | undefined {
    return this.transaction?.commitTime;
  }

  private onOrigin(name: string): void {
    const transaction = this.transaction;
    if (!transaction) throw new PgferryError("protocol", `origin message ${JSON.stringify(name)} outside a transaction (no Begin before it)`);
    // An origin of anyone else (a native subscription into this database) is data like any other.
    if (this.options.ignoreOrigins?.has(name)) transaction.ignoredOrigin = name;
  }

  /** layoutFor for a row change; a change of a transaction left out for its origin is only counted. */
  private rowLayoutFor(oid: number): RelationLayout | undefined {
    const layout = this.layoutFor(oid);
    const transaction = this.transaction;
    if (layout && transaction?.ignoredOrigin !== undefined) {
      transaction.filtered += 1;
      return undefined;
    }
    return layout;
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
    const layout = new RelationLayout(plan, relation);
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
}
