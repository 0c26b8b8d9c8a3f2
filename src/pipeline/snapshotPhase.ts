/**
 * Copies tables under one exported snapshot, in parallel: each worker holds a source transaction
 * that imported the snapshot, and copies chunks (a leaf partition, or a block range of one) as a
 * COPY pipe source → target without per-row JavaScript. Every chunk commits in its own target
 * transaction together with its row count; a table becomes `ready` (with the snapshot's LSN as its
 * sync LSN) when all its chunks are in. A table interrupted half-way is cleared and copied again.
 */
import { pipeline as pipe } from "node:stream/promises";
import PQueue from "p-queue";
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
import { snapshotSelect } from "../plan/snapshotSql.js";

export interface SnapshotOptions {
  source: Endpoint;
  target: Endpoint;
  workers: number;
  chunkRows: number;
  log: Logger;
  store: CheckpointStore;
  plans: readonly TablePlan[];
  snapshotName: string;
  /** The LSN the snapshot corresponds to: each copied table's sync LSN. */
  syncLsn: bigint;
  /** Called once every worker has imported the snapshot (the exporting connection may then go). */
  onSnapshotImported(): Promise<void>;
  onRowsCopied?(table: string, rows: number): void;
}

interface Chunk {
  plan: TablePlan;
  partition: CatalogPartition;
  /** Block range [from, to); `to` undefined = to the end of the relation. */
  fromBlock: number | undefined;
  toBlock: number | undefined;
  weight: number;
}

interface Worker {
  source: pg.Client;
  target: pg.Client;
}


function chunksOf(plan: TablePlan, chunkRows: number): Chunk[] {
  const chunks: Chunk[] = [];
  for (const partition of plan.source.partitions) {
    const rows = partition.estimatedRows ?? partition.pages * 50;
    const pieces = Math.min(Math.max(1, Math.ceil(rows / chunkRows)), Math.max(1, partition.pages));
    if (pieces === 1) {
      chunks.push({ plan, partition, fromBlock: undefined, toBlock: undefined, weight: partition.pages });
      continue;
    }
    const step = Math.ceil(partition.pages / pieces);
    for (let block = 0; block < partition.pages; block += step) {
      const last = block + step >= partition.pages;
      chunks.push({ plan, partition, fromBlock: block === 0 ? undefined : block, toBlock: last ? undefined : block + step, weight: step });
    }
  }
  return chunks;
}

function chunkConditions(chunk: Chunk): string[] {
  const where: string[] = [];
  if (chunk.fromBlock !== undefined) where.push(`s.ctid >= '(${chunk.fromBlock},0)'::tid`);
  if (chunk.toBlock !== undefined) where.push(`s.ctid < '(${chunk.toBlock},0)'::tid`);
  return where;
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

export async function runSnapshot(options: SnapshotOptions, signal: AbortSignal): Promise<void> {
  const { log, store, plans } = options;
  const hooks = await loadHooks(plans);
  const chunks = plans.flatMap((plan) => chunksOf(plan, options.chunkRows)).sort((a, b) => b.weight - a.weight);
  const workers: Worker[] = [];
  const closeAll = () => Promise.all(workers.flatMap((w) => [w.source.end(), w.target.end()]).map((p) => p.catch(() => undefined)));
  try {
    const count = Math.max(1, Math.min(options.workers, chunks.length));
    for (let i = 0; i < count; i += 1) workers.push(await openWorker(options));
    await options.onSnapshotImported();

    const remaining = new Map(plans.map((p) => [p.id, chunksOf(p, options.chunkRows).length] as const));
    const copied = new Map<string, number>(plans.map((p) => [p.id, 0]));
    for (const plan of plans) {
      await store.startCopy(plan.id, plan.source.estimatedRows);
      await clearTargets(workers[0]!.target, plan);
      log.info({ table: plan.id, chunks: remaining.get(plan.id), estimatedRows: plan.source.estimatedRows }, "copying");
    }
    const idle = [...workers];
    const queue = new PQueue({ concurrency: workers.length });
    // Stopping mid-copy: drop the queued chunks and close the workers, so a long or blocked COPY
    // does not hold up shutdown (its chunk's target transaction rolls back; it is copied again later).
    const abort = () => {
      queue.clear();
      void closeAll();
    };
    signal.addEventListener("abort", abort, { once: true });
    if (signal.aborted) abort();
    const started = performance.now();
    await Promise.all(
      chunks.map((chunk) =>
        queue.add(async () => {
          if (signal.aborted) return;
          const worker = idle.pop()!;
          try {
            const rows = await copyChunk(worker, chunk, options, hooks);
            options.onRowsCopied?.(chunk.plan.id, rows);
            copied.set(chunk.plan.id, (copied.get(chunk.plan.id) ?? 0) + rows);
          } finally {
            idle.push(worker);
          }
          const left = (remaining.get(chunk.plan.id) ?? 1) - 1;
          remaining.set(chunk.plan.id, left);
          if (left === 0) {
            await store.finishCopy(chunk.plan.id, options.syncLsn);
            log.info({ table: chunk.plan.id, rows: copied.get(chunk.plan.id) }, "table copied");
          }
        }),
      ),
    ).finally(() => signal.removeEventListener("abort", abort));
    if (signal.aborted) throw new Error("snapshot aborted");
    const total = [...copied.values()].reduce((a, b) => a + b, 0);
    log.info({ tables: plans.length, rows: total, seconds: Number(((performance.now() - started) / 1000).toFixed(2)) }, "snapshot done");
    await Promise.all(workers.map((w) => w.source.query("COMMIT")));
  } finally {
    await closeAll();
  }
}
