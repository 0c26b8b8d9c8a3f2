/**
 * Copies tables under one exported snapshot, in parallel: each worker holds a source transaction
 * that imported the snapshot, and copies chunks (a leaf partition, or a ctid range of one sized by
 * rows and by bytes) as a COPY pipe source → target without per-row JavaScript. Every chunk commits
 * in its own target transaction together with its row count; a table becomes `ready` (with the
 * snapshot's LSN as its sync LSN) when all its chunks are in. A table interrupted half-way is
 * cleared and copied again. With `indexes`, a target table's secondary indexes are dropped before its
 * first row and built again once every source feeding it is copied (indexDeferral.ts).
 */
import { pipeline as pipe } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import type { Logger } from "pino";
import { PgferryError } from "../errors.js";
import { deleteOwnedStatement, insertRowsStatement, upsertStatement } from "../apply/statements.js";
import { qualifiedName, quoteIdent, quoteLiteral } from "../sql/quote.js";
import type { Value } from "../plan/changes.js";
import type { CatalogPartition } from "../catalog/tableCatalog.js";
import type { CheckpointStore } from "../state/checkpointStore.js";
import { loadHooks, runHook, type HookRow, type RowHook } from "../transform/codeHook.js";
import type { EdgePlan, TablePlan } from "../plan/plan.js";
import type { Endpoint } from "../sql/endpoint.js";
import { classify } from "./errorPolicy.js";
import type { IndexDeferral } from "./indexDeferral.js";
import { settleAll } from "./settleAll.js";
import { RELATION_SIZES_SQL, snapshotSelect, tidRangeConditions, type Tid } from "../plan/snapshotSql.js";

export interface SnapshotOptions {
  source: Endpoint;
  target: Endpoint;
  workers: number;
  /** A table is cut into as many chunks as the larger of rows / chunkRows and bytes / chunkBytes. */
  chunkRows: number;
  chunkBytes: number;
  log: Logger;
  store: CheckpointStore;
  plans: readonly TablePlan[];
  snapshotName: string;
  /** The LSN the snapshot corresponds to: each copied table's sync LSN. */
  syncLsn: bigint;
  /** Called once every worker has imported the snapshot (the exporting connection may then go). */
  onSnapshotImported(): Promise<void>;
  onRowsCopied?(table: string, rows: number): void;
  /**
   * Secondary indexes built after the copy. `defer`: drop them first (snapshot.deferIndexes); either
   * way, the recorded ones of a table are built again when its copy ends. `live`: target tables a
   * source already copied feeds (a merge into a table in use): their indexes stay.
   */
  indexes?: { deferral: IndexDeferral; defer: boolean; live: ReadonlySet<string> };
}

interface Chunk {
  plan: TablePlan;
  partition: CatalogPartition;
  /** Ctid range [from, to); an end undefined is open. */
  from: Tid | undefined;
  to: Tid | undefined;
  /** Estimated cost in bytes (see ROW_COST_BYTES): the costliest chunks go first. */
  weight: number;
}

interface Worker {
  source: pg.Client;
  target: pg.Client;
}

/** A heap as the copy sees it when it starts: pages, estimated rows (null: unknown), bytes with TOAST. */
export interface RelationSize {
  pages: number;
  rows: number | null;
  bytes: number;
}

export interface TidRange {
  from: Tid | undefined;
  to: Tid | undefined;
  /** Estimated share of the relation's bytes and rows. */
  bytes: number;
  rows: number;
}

/** At most this many tuples fit in an 8 KiB page (MaxHeapTuplesPerPage). */
const MAX_TUPLES_PER_PAGE = 291;
/** Rows per page assumed when a table was never analysed. */
const DEFAULT_ROWS_PER_PAGE = 50;
/**
 * What a row costs beyond its bytes, in bytes: a binary COPY of a narrow indexed table (400k rows,
 * 26 MB) takes as long as one of 140 MB of wide rows, about 3.5 µs a row against 8 ns a byte.
 */
const ROW_COST_BYTES = 400;

/**
 * Cuts a heap into consecutive ctid ranges, as many as the larger of rows / chunkRows and bytes /
 * chunkBytes asks for. Each range starts where the one before ends, the first and the last are
 * open, so every tuple is in exactly one of them whatever the estimates say. With fewer pages than
 * ranges (a wide table: few rows, its bytes in TOAST) a page is split by line pointer.
 */
export function splitRelation(size: RelationSize, limits: { rows: number; bytes: number }): TidRange[] {
  const { pages, bytes } = size;
  const rows = size.rows ?? pages * DEFAULT_ROWS_PER_PAGE;
  const wanted = Math.max(1, Math.ceil(rows / limits.rows), Math.ceil(bytes / limits.bytes));
  const perPage = rows > 0 && pages > 0 ? Math.min(MAX_TUPLES_PER_PAGE, Math.max(1, Math.ceil(rows / pages))) : DEFAULT_ROWS_PER_PAGE;
  // No more ranges than tuples the heap is thought to hold.
  const pieces = Math.min(wanted, pages * perPage);
  if (pieces <= 1) return [{ from: undefined, to: undefined, bytes, rows }];
  const bounds: Tid[] = [];
  for (let k = 1; k < pieces; k += 1) {
    let bound: Tid;
    if (pieces <= pages) {
      bound = { block: Math.round((k * pages) / pieces), offset: 0 };
    } else {
      const block = Math.floor((k * pages) / pieces);
      bound = { block, offset: Math.round(((k * pages - block * pieces) * perPage) / pieces) };
    }
    const last = bounds.at(-1) ?? { block: 0, offset: 0 };
    if (bound.block > last.block || (bound.block === last.block && bound.offset > last.offset)) bounds.push(bound);
  }
  const count = bounds.length + 1;
  return [undefined, ...bounds].map((from, i) => ({ from, to: bounds[i], bytes: Math.ceil(bytes / count), rows: Math.ceil(rows / count) }));
}

function chunksOf(plan: TablePlan, limits: { rows: number; bytes: number }, sizes: ReadonlyMap<string, RelationSize>): Chunk[] {
  return plan.source.partitions.flatMap((partition) => {
    const size = sizes.get(qualifiedName(partition)) ?? { pages: partition.pages, rows: partition.estimatedRows, bytes: partition.pages * 8192 };
    return splitRelation(size, limits).map((range) => ({ plan, partition, from: range.from, to: range.to, weight: range.bytes + range.rows * ROW_COST_BYTES }));
  });
}

/** Sizes of every relation to copy, read in the worker's snapshot transaction when the copy starts. */
async function relationSizes(client: pg.Client, plans: readonly TablePlan[]): Promise<Map<string, RelationSize>> {
  const names = plans.flatMap((p) => p.source.partitions.map((partition) => qualifiedName(partition)));
  const { rows } = await client.query<{ name: string; pages: string | null; reltuples: string | null; bytes: string | null }>(RELATION_SIZES_SQL, [names]);
  const sizes = new Map<string, RelationSize>();
  for (const r of rows) {
    if (r.pages === null || r.bytes === null) continue;
    const reltuples = Number(r.reltuples ?? -1);
    sizes.set(r.name, { pages: Number(r.pages), rows: reltuples >= 0 ? reltuples : null, bytes: Number(r.bytes) });
  }
  return sizes;
}

function chunkConditions(chunk: Chunk): string[] {
  return tidRangeConditions(chunk.from, chunk.to);
}

/** The pushdown: one COPY pipe source → target, the mapping done by the source's SELECT. */
async function copyEdge(worker: Worker, chunk: Chunk, edge: EdgePlan): Promise<number> {
  const format = edge.copyFormat === "binary" ? " (FORMAT binary)" : "";
  const columns = edge.table.columns.map((c) => quoteIdent(c.name)).join(", ");
  const ingest = worker.target.query(copyFrom(`COPY ${qualifiedName(edge.table)} (${columns}) FROM STDIN${format}`));
  await pipe(worker.source.query(copyTo(`COPY (${snapshotSelect(edge, chunk.partition, chunkConditions(chunk))}) TO STDOUT${format}`)), ingest);
  return ingest.rowCount ?? 0;
}

const HOOK_FETCH_ROWS = 2000;

/** The code path, for edges with a hook: rows read through a cursor (as text), reshaped in JavaScript, written set-based. */
async function copyEdgeWithHook(worker: Worker, chunk: Chunk, edge: EdgePlan, hook: RowHook): Promise<number> {
  const table = edge.table;
  await worker.source.query(`DECLARE pgferry_hook_cursor NO SCROLL CURSOR FOR ${snapshotSelect(edge, chunk.partition, chunkConditions(chunk))}`);
  let rows = 0;
  try {
    for (;;) {
      const { rows: batch } = await worker.source.query<(string | null)[]>({ text: `FETCH ${HOOK_FETCH_ROWS} FROM pgferry_hook_cursor`, rowMode: "array" });
      if (batch.length === 0) break;
      const out: Value[][] = [];
      for (const values of batch) {
        const row: HookRow = {};
        table.columns.forEach((c, i) => { row[c.name] = values[i] ?? null; });
        const result = runHook(hook, row, { op: "snapshot", source: chunk.plan.id, target: table.id }, edge.index);
        for (const r of result ?? []) out.push(table.columns.map((c) => r[c.name] ?? null));
      }
      rows += out.length;
      if (out.length === 0) continue;
      const all = table.columns.map((_, i) => i);
      const statement = table.keyIndexes.length > 0 ? upsertStatement(table, all, out as (string | null)[][]) : insertRowsStatement(table, out as (string | null)[][]);
      await worker.target.query({ text: statement.text, values: statement.values });
    }
  } finally {
    await worker.source.query("CLOSE pgferry_hook_cursor").catch(() => undefined);
  }
  return rows;
}

async function copyChunk(worker: Worker, chunk: Chunk, options: SnapshotOptions, hooks: ReadonlyMap<string, RowHook>): Promise<number> {
  let rows = 0;
  await worker.target.query("BEGIN");
  try {
    for (const edge of chunk.plan.edges) {
      const hook = edge.hook ? hooks.get(edge.hook) : undefined;
      try {
        rows = Math.max(rows, hook ? await copyEdgeWithHook(worker, chunk, edge, hook) : await copyEdge(worker, chunk, edge));
      } catch (error) {
        // The server's refusal of a row names neither table (COPY's context line, which quotes the
        // row, is never logged); its code and class stay, so it is classified the same.
        if (error instanceof pg.DatabaseError && classify(error).class !== "outage") {
          error.message = `snapshot of ${chunk.plan.id} → ${edge.table.id}: ${error.message}`;
          // The status shows which table stopped the snapshot and why; it is copied again on the next start.
          await options.store.failTable(chunk.plan.id, error.message).catch(() => undefined);
        }
        throw error;
      }
    }
    await options.store.addCopiedRows(worker.target, chunk.plan.id, rows);
    await worker.target.query("COMMIT");
  } catch (error) {
    await worker.target.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
  return rows;
}

/**
 * Empties what a source table feeds, so an interrupted copy can start over: whole target tables, or
 * only this source's rows (by its discriminator) in a table that several sources feed.
 */
async function clearTargets(client: pg.Client, plan: TablePlan): Promise<void> {
  for (const edge of plan.edges) {
    if (edge.ownership) {
      const statement = deleteOwnedStatement(edge.table, edge.ownership);
      await client.query(statement.text, statement.values);
      continue;
    }
    const table = qualifiedName(edge.table);
    const { rows } = await client.query(`SELECT 1 FROM ${table} LIMIT 1`);
    if (rows.length === 0) continue;
    try {
      await client.query(`TRUNCATE ${table}`);
    } catch {
      // Referenced by a foreign key: TRUNCATE refuses, DELETE does not (FK triggers are off in replica role).
      await client.query(`DELETE FROM ${table}`);
    }
  }
}

async function openWorker(options: SnapshotOptions): Promise<Worker> {
  // Raw text for every type: the hook path reads rows through a cursor and must not parse them in JavaScript.
  const opened = await Promise.allSettled([
    options.source.client("pgferry-snapshot", { rawText: true }),
    // A chunk marked copied must survive a crash: the apply session commits durably (docs/design.md, rule 2).
    options.target.applySession("pgferry-snapshot"),
  ]);
  const failed = opened.find((o) => o.status === "rejected");
  if (failed) {
    await Promise.all(opened.flatMap((o) => (o.status === "fulfilled" ? [o.value.end().catch(() => undefined)] : [])));
    throw failed.reason;
  }
  const [source, target] = opened.map((o) => (o as PromiseFulfilledResult<pg.Client>).value) as [pg.Client, pg.Client];
  await source.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    await source.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(options.snapshotName)}`);
  } catch (error) {
    await Promise.all([source.end(), target.end()]).catch(() => undefined);
    // 22023: the snapshot no longer exists because the connection that exported it is gone.
    if ((error as { code?: string }).code === "22023") {
      throw new PgferryError("connection", `the exported snapshot ${options.snapshotName} is gone (its replication connection dropped); copying again under a new one`, { cause: error });
    }
    throw error;
  }
  return { source, target };
}

/** Per target table (by id), the plans of this copy that feed it: it is complete when none is left. */
function feedingPlans(plans: readonly TablePlan[]): Map<string, { table: EdgePlan["table"]; plans: Set<string> }> {
  const targets = new Map<string, { table: EdgePlan["table"]; plans: Set<string> }>();
  for (const plan of plans) {
    for (const edge of plan.edges) {
      const entry = targets.get(edge.table.id) ?? { table: edge.table, plans: new Set<string>() };
      entry.plans.add(plan.id);
      targets.set(edge.table.id, entry);
    }
  }
  return targets;
}

function relationKey(chunk: Chunk): string {
  return qualifiedName(chunk.partition);
}

/**
 * The costliest chunk of a relation no worker is copying, else the costliest one: chunks of one
 * relation written side by side contend on the target (its extension lock, the last page of a
 * serial key's index), so they overlap only when nothing else is left.
 */
function nextChunk(pending: Chunk[], copying: ReadonlyMap<string, number>): Chunk | undefined {
  const free = pending.findIndex((chunk) => (copying.get(relationKey(chunk)) ?? 0) === 0);
  return pending.splice(free === -1 ? 0 : free, 1)[0];
}

export async function runSnapshot(options: SnapshotOptions, signal: AbortSignal): Promise<void> {
  const { log, store, plans, indexes } = options;
  const hooks = await loadHooks(plans);
  const workers: Worker[] = [];
  const closeAll = () => Promise.all(workers.flatMap((w) => [w.source.end(), w.target.end()]).map((p) => p.catch(() => undefined)));
  const targets = feedingPlans(plans);
  // Index builds of tables whose copy is complete: they run beside the copy of the others.
  const builds: Promise<void>[] = [];
  let finished = false;
  try {
    // The first worker reads the sizes under the snapshot; how many chunks they make bounds the workers.
    workers.push(await openWorker(options));
    const sizes = await relationSizes(workers[0]!.source, plans);
    const limits = { rows: options.chunkRows, bytes: options.chunkBytes };
    const chunksByTable = new Map(plans.map((plan) => [plan.id, chunksOf(plan, limits, sizes)] as const));
    const chunks = [...chunksByTable.values()].flat().sort((a, b) => b.weight - a.weight);
    const count = Math.max(1, Math.min(options.workers, chunks.length));
    const opened = await Promise.allSettled(Array.from({ length: count - 1 }, () => openWorker(options)));
    for (const o of opened) if (o.status === "fulfilled") workers.push(o.value);
    const failed = opened.find((o) => o.status === "rejected");
    if (failed) throw failed.reason;
    await options.onSnapshotImported();

    const remaining = new Map(plans.map((p) => [p.id, chunksByTable.get(p.id)?.length ?? 0] as const));
    const copied = new Map<string, number>(plans.map((p) => [p.id, 0]));
    if (indexes?.defer) {
      // Before any table takes a row; each target table once, however many sources feed it.
      const deferred = [...targets.values()].filter((t) => !indexes.live.has(t.table.id));
      await Promise.all(
        workers.map(async (worker, w) => {
          for (const target of deferred.filter((_, i) => i % workers.length === w)) await indexes.deferral.defer(worker.target, target.table);
        }),
      );
    }
    const tableCopied = async (plan: TablePlan) => {
      await store.finishCopy(plan.id, options.syncLsn);
      for (const edge of plan.edges) {
        const target = targets.get(edge.table.id);
        if (!target?.plans.delete(plan.id) || target.plans.size > 0 || !indexes) continue;
        const build = indexes.deferral.rebuild(new Set([edge.table.id]));
        build.catch(() => undefined);
        builds.push(build);
      }
    };
    // Independent per table: marked copying and emptied by the workers side by side.
    await Promise.all(
      workers.map(async (worker, w) => {
        for (const plan of plans.filter((_, i) => i % workers.length === w)) {
          await store.startCopy(plan.id, plan.source.estimatedRows);
          await clearTargets(worker.target, plan);
          const bytes = plan.source.partitions.reduce((sum, partition) => sum + (sizes.get(qualifiedName(partition))?.bytes ?? 0), 0);
          log.info({ table: plan.id, chunks: remaining.get(plan.id), estimatedRows: plan.source.estimatedRows, bytes }, "copying");
        }
      }),
    );
    // A partitioned table without partitions has nothing to copy.
    for (const plan of plans) if (remaining.get(plan.id) === 0) await tableCopied(plan);
    const pending = [...chunks];
    // Stopping mid-copy: drop the chunks not started and close the workers, so a long or blocked COPY
    // does not hold up shutdown (its chunk's target transaction rolls back; it is copied again later).
    let stopping = false;
    const abort = () => {
      stopping = true;
      pending.length = 0;
      void closeAll();
    };
    signal.addEventListener("abort", abort, { once: true });
    if (signal.aborted) abort();
    const started = performance.now();
    const copying = new Map<string, number>();
    const copyOne = async (worker: Worker, chunk: Chunk) => {
      const relation = relationKey(chunk);
      copying.set(relation, (copying.get(relation) ?? 0) + 1);
      const chunkStarted = performance.now();
      try {
        const rows = await copyChunk(worker, chunk, options, hooks);
        log.debug({ table: chunk.plan.id, relation, rows, besideIt: copying.get(relation), seconds: Number(((performance.now() - chunkStarted) / 1000).toFixed(3)) }, "chunk copied");
        options.onRowsCopied?.(chunk.plan.id, rows);
        copied.set(chunk.plan.id, (copied.get(chunk.plan.id) ?? 0) + rows);
      } finally {
        copying.set(relation, (copying.get(relation) ?? 1) - 1);
      }
      const left = (remaining.get(chunk.plan.id) ?? 1) - 1;
      remaining.set(chunk.plan.id, left);
      if (left === 0) {
        await tableCopied(chunk.plan);
        log.info({ table: chunk.plan.id, rows: copied.get(chunk.plan.id) }, "table copied");
      }
    };
    await Promise.all(
      workers.map(async (worker) => {
        try {
          for (let chunk = nextChunk(pending, copying); chunk && !stopping; chunk = nextChunk(pending, copying)) await copyOne(worker, chunk);
        } catch (error) {
          // The other workers take no further chunk (closing them ends the ones in hand); the tables not
          // ready are copied again on the next start.
          stopping = true;
          throw error;
        }
      }),
    ).finally(() => signal.removeEventListener("abort", abort));
    if (signal.aborted) throw new Error("snapshot aborted");
    // The source snapshot is no longer needed while the last indexes build.
    await Promise.all(workers.map((w) => w.source.query("COMMIT")));
    await closeAll();
    const copySeconds = Number(((performance.now() - started) / 1000).toFixed(2));
    await settleAll(builds);
    if (signal.aborted) throw new Error("snapshot aborted");
    finished = true;
    const total = [...copied.values()].reduce((a, b) => a + b, 0);
    log.info({ tables: plans.length, rows: total, seconds: Number(((performance.now() - started) / 1000).toFixed(2)), copySeconds }, "snapshot done");
  } finally {
    await closeAll();
    // A failed or stopped copy cancels the builds in flight: their tables' records stay for the next start.
    if (!finished && builds.length > 0) await indexes?.deferral.stop();
  }
}
