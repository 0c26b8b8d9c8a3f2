/**
 * pipeline/resync/ — per-table resync while streaming: the engine, its watermarks and the windows the stream feeds.
 *
 * Per-table resync while streaming, DBLog style: the table is read in chunks ordered by its key,
 * each chunk's SELECT bracketed by a low and a high watermark written into the WAL; the stream
 * applies the chunk at its high watermark, minus the rows the stream itself changed in between
 * (see ResyncWindows). No source locks, the other tables keep streaming, and the table's own
 * changes keep applying. It repairs drift: rows changed or added on the target are rewritten, rows
 * deleted there come back, and rows the source does not have are removed (where the target is keyed
 * by the source key). Progress commits with each chunk, so a restart resumes after the last one.
 *
 * The engine outlives stream sessions: `attach` (stream up) resumes running resyncs, `detach`
 * (stream down) stops their workers until the next attach.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Logger } from "pino";
import { quoteIdent } from "../../sql/quote.js";
import { PgferryError } from "../../errors.js";
import type { ResyncRecord, ResyncStore } from "../../state/resyncStore.js";
import type { TablePlan } from "../../plan/plan.js";
import type { Endpoint } from "../../sql/endpoint.js";
import { classify } from "../errorPolicy.js";
import { ResyncWindows } from "./resyncWindows.js";
import { encodeWatermark, WATERMARK_PREFIX, type Watermark } from "./watermarks.js";

export interface ResyncEngineOptions {
  store: ResyncStore;
  log: Logger;
  /** Rows per chunk at most (a chunk is held in memory between its watermarks). */
  chunkRows: number;
  /** Bytes per chunk at most: wide rows (1536-d vectors as text) make chunks of fewer rows. */
  chunkBytes?: number;
  onProgress?(record: { table: string; running: boolean }): void;
}

interface Session {
  plans: Map<string, TablePlan>;
  source: pg.Pool;
  windows: ResyncWindows;
  stopped: boolean;
}

/** Thrown to callers of `start` for a table the pipeline does not replicate (the API answers 404). */
export class ResyncUnknownTableError extends PgferryError {
  constructor(readonly table: string) {
    super("mapping", `table ${table} is not replicated by this pipeline`);
  }
}

/** A resync of the table is already running (the API answers 409). */
export class ResyncAlreadyRunningError extends PgferryError {
  constructor(readonly table: string, readonly id: string) {
    super("state", `a resync of ${table} is already running (id ${id})`);
  }
}

export class ResyncEngine {
  private session: Session | undefined;
  private plans = new Map<string, TablePlan>();
  private readonly running = new Map<string, string>(); // table → resync id
  private readonly workers = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();

  constructor(private readonly options: ResyncEngineOptions) {}

  /** The windows the stream reader feeds; a fresh set per stream session. */
  get windows(): ResyncWindows | undefined {
    return this.session?.windows;
  }

  inProgress(): string[] {
    return [...this.running.keys()];
  }

  /** Stream up: resume every running resync from its last applied chunk. */
  async attach(plans: readonly TablePlan[], sourceEndpoint: Endpoint): Promise<ResyncWindows> {
    await this.detach();
    this.plans = new Map(plans.map((p) => [p.id, p]));
    const source = sourceEndpoint.pool("pgferry-resync", 2, { rawText: true });
    const session: Session = { plans: this.plans, source, windows: new ResyncWindows(), stopped: false };
    this.session = session;
    for (const record of await this.options.store.running()) {
      if (!this.plans.has(record.table)) {
        await this.options.store.fail(record.id, "the table is no longer in the mapping");
        continue;
      }
      this.launch(session, record);
    }
    return session.windows;
  }

  /** Stream down: workers stop after their current step; running resyncs resume at the next attach. */
  async detach(): Promise<void> {
    const session = this.session;
    if (!session) return;
    session.stopped = true;
    this.session = undefined;
    for (const waiter of this.waiters.values()) waiter.reject(new Error("stream stopped"));
    this.waiters.clear();
    // A worker inside a query to a peer that stopped answering must not hold the stream's stop:
    // wait a little, then end the pool regardless (its query then fails; the worker sees `stopped`).
    const settled = Promise.allSettled(this.workers.values());
    await Promise.race([settled, delay(5000)]);
    await Promise.race([session.source.end().catch(() => undefined), delay(5000)]);
  }

  async start(table: string): Promise<{ id: string }> {
    if (!this.session) {
      throw new PgferryError("state", "the pipeline is not streaming yet (preflight, snapshot or a retry); a resync can start once it streams", {
        hint: "wait for /readyz, then ask again",
      });
    }
    const plan = this.plans.get(table);
    if (!plan) throw new ResyncUnknownTableError(table);
    const existing = this.running.get(table);
    if (existing) throw new ResyncAlreadyRunningError(table, existing);
    if (plan.keyInputs.length === 0) {
      throw new PgferryError("mapping", `${table} has no key (REPLICA IDENTITY FULL without one): it cannot be resynced in chunks`, {
        hint: "add a primary key to the source table, or re-copy it with `pgferry slot drop` and a new run",
      });
    }
    const record = await this.options.store.create(table, plan.source.estimatedRows);
    this.running.set(table, record.id);
    if (this.session) this.launch(this.session, record);
    return { id: record.id };
  }

  async get(id: string): Promise<ResyncRecord | undefined> {
    return this.options.store.get(id);
  }

  private launch(session: Session, record: ResyncRecord): void {
    this.running.set(record.table, record.id);
    this.options.onProgress?.({ table: record.table, running: true });
    const log = this.options.log.child({ resync: record.id, table: record.table });
    const worker = this.work(session, record, log)
      .then(
        (finished) => {
          if (!finished) return;
          this.running.delete(record.table);
          this.options.onProgress?.({ table: record.table, running: false });
          log.info("resync done");
        },
        async (error: unknown) => {
          if (session.stopped) return; // resumes at the next attach
          if (classify(error).disposition === "retry") {
            // A dropped connection or a restarting source: start over from the last applied chunk.
            log.warn({ err: error }, "resync interrupted by a transient failure; resuming from its last applied chunk");
            setTimeout(() => void this.relaunch(session, record.id), 1000);
            return;
          }
          this.running.delete(record.table);
          this.options.onProgress?.({ table: record.table, running: false });
          log.error({ err: error }, "resync failed");
          await this.options.store.fail(record.id, (error as Error).message).catch(() => undefined);
        },
      )
      .finally(() => this.workers.delete(record.id));
    this.workers.set(record.id, worker);
  }

  private async relaunch(session: Session, id: string): Promise<void> {
    if (session.stopped || this.session !== session) return;
    const record = await this.options.store.get(id).catch(() => undefined);
    if (!record) {
      setTimeout(() => void this.relaunch(session, id), 1000);
      return;
    }
    if (record.state === "running" && !this.workers.has(record.id)) this.launch(session, record);
  }

  /** Resolves true when the last chunk has been applied, false when the session stopped first. */
  private async work(session: Session, record: ResyncRecord, log: Logger): Promise<boolean> {
    const plan = session.plans.get(record.table)!;
    const attempt = randomBytes(4).toString("hex");
    const keyColumns = plan.keyInputs.map((i) => plan.sourceColumns[i]!);
    const keyTypes = keyColumns.map((k) => plan.source.columns.find((c) => c.name === k)!.type);
    const tuple = `(${keyColumns.map(quoteIdent).join(", ")})`;
    const select = (after: boolean, limit: number) =>
      `SELECT ${plan.sourceColumns.map(quoteIdent).join(", ")} FROM ${quoteIdent(plan.source.schema)}.${quoteIdent(plan.source.name)}` +
      (after ? ` WHERE ${tuple} > (${keyTypes.map((t, i) => `$${i + 1}::${t}`).join(", ")})` : "") +
      ` ORDER BY ${keyColumns.map(quoteIdent).join(", ")} LIMIT ${limit}`;
    // Start small, then size chunks from the bytes rows actually take, within chunkRows and chunkBytes.
    const maxBytes = this.options.chunkBytes ?? 16 * 1024 * 1024;
    let limit = Math.min(this.options.chunkRows, 100);
    let lastKey = record.lastKey;
    let chunk = record.chunksDone;
    log.info({ from: lastKey, chunksDone: chunk }, lastKey ? "resync resuming" : "resync started");
    while (!session.stopped) {
      chunk += 1;
      const base = { resync: record.id, table: plan.id, attempt, chunk };
      await this.emit(session, { ...base, mark: "low" });
      const { rows } = await session.source.query<(string | null)[]>({ text: select(lastKey !== null, limit), values: lastKey ?? [], rowMode: "array" });
      const final = rows.length < limit;
      let bytes = 0;
      for (const row of rows) for (const v of row) bytes += (v?.length ?? 0) + 24;
      const perRow = rows.length > 0 ? bytes / rows.length : 0;
      limit = perRow > 0 ? Math.max(10, Math.min(this.options.chunkRows, Math.floor(maxBytes / perRow))) : limit;
      const hi = rows.length > 0 ? plan.keyInputs.map((i) => rows[rows.length - 1]![i] ?? "") : null;
      const applied = new Promise<void>((resolve, reject) => this.waiters.set(`${record.id}/${chunk}`, { resolve, reject }));
      applied.catch(() => undefined);
      session.windows.register({
        mark: base,
        plan,
        rows,
        lo: lastKey,
        hi,
        final,
        progress: (key, count, done) => this.options.store.progressStatement(record.id, key, count, done),
        onApplied: () => {
          this.waiters.get(`${record.id}/${chunk}`)?.resolve();
          this.waiters.delete(`${record.id}/${chunk}`);
        },
      });
      await this.emit(session, { ...base, mark: "high" });
      try {
        await applied;
      } catch {
        session.windows.unregister(base);
        return false;
      }
      log.debug({ chunk, rows: rows.length }, "resync chunk applied");
      if (final) return true;
      lastKey = hi;
    }
    return false;
  }

  private async emit(session: Session, mark: Watermark): Promise<void> {
    await session.source.query("SELECT pg_logical_emit_message(true, $1, $2)", [WATERMARK_PREFIX, encodeWatermark(mark)]);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
