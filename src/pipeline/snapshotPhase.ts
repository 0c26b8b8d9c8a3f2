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
import { quoteIdent } from "../apply/statements.js";
import type { CatalogPartition } from "../catalog/tableCatalog.js";
import type { StateStore } from "../state/stateStore.js";
import type { TablePlan, TargetPlan } from "../transform/plan.js";

export interface SnapshotOptions {
  sourceUrl: string;
  targetUrl: string;
  workers: number;
  chunkRows: number;
  log: Logger;
  store: StateStore;
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

function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
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

function selectSql(chunk: Chunk, target: TargetPlan): string {
  const columns = target.sourceColumns.map(quoteIdent).join(", ");
  const where: string[] = [];
  if (chunk.fromBlock !== undefined) where.push(`ctid >= '(${chunk.fromBlock},0)'::tid`);
  if (chunk.toBlock !== undefined) where.push(`ctid < '(${chunk.toBlock},0)'::tid`);
  const filter = where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "";
  return `SELECT ${columns} FROM ONLY ${qualified(chunk.partition.schema, chunk.partition.name)}${filter}`;
}

async function copyChunk(worker: Worker, chunk: Chunk, options: SnapshotOptions): Promise<number> {
  let rows = 0;
  await worker.target.query("BEGIN");
  try {
    for (const target of chunk.plan.targets) {
      const format = target.copyFormat === "binary" ? " (FORMAT binary)" : "";
      const columns = target.table.columns.map((c) => quoteIdent(c.name)).join(", ");
      const ingest = worker.target.query(copyFrom(`COPY ${qualified(target.table.schema, target.table.name)} (${columns}) FROM STDIN${format}`));
      await pipe(worker.source.query(copyTo(`COPY (${selectSql(chunk, target)}) TO STDOUT${format}`)), ingest);
      rows = Math.max(rows, ingest.rowCount ?? 0);
    }
    await options.store.addCopiedRows(worker.target, chunk.plan.id, rows);
    await worker.target.query("COMMIT");
  } catch (error) {
    await worker.target.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
  return rows;
}

/** Empties the target tables a source table feeds, so an interrupted copy can start over. */
async function clearTargets(client: pg.Client, plan: TablePlan): Promise<void> {
  for (const target of plan.targets) {
    const table = qualified(target.table.schema, target.table.name);
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
  const source = new pg.Client({ connectionString: options.sourceUrl, application_name: "pgferry-snapshot" });
  const target = new pg.Client({ connectionString: options.targetUrl, application_name: "pgferry-snapshot" });
  source.on("error", () => undefined);
  target.on("error", () => undefined);
  await Promise.all([source.connect(), target.connect()]);
  await source.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  await source.query(`SET TRANSACTION SNAPSHOT '${options.snapshotName.replace(/'/g, "''")}'`);
  await target.query("SET session_replication_role = replica");
  await target.query("SET synchronous_commit = on"); // a chunk marked copied must survive a crash
  return { source, target };
}

export async function runSnapshot(options: SnapshotOptions, signal: AbortSignal): Promise<void> {
  const { log, store, plans } = options;
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
    const abort = () => queue.clear();
    signal.addEventListener("abort", abort, { once: true });
    const started = performance.now();
    await Promise.all(
      chunks.map((chunk) =>
        queue.add(async () => {
          if (signal.aborted) return;
          const worker = idle.pop()!;
          try {
            const rows = await copyChunk(worker, chunk, options);
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
    );
    signal.removeEventListener("abort", abort);
    if (signal.aborted) throw new Error("snapshot aborted");
    const total = [...copied.values()].reduce((a, b) => a + b, 0);
    log.info({ tables: plans.length, rows: total, seconds: Number(((performance.now() - started) / 1000).toFixed(2)) }, "snapshot done");
    await Promise.all(workers.map((w) => w.source.query("COMMIT")));
  } finally {
    await closeAll();
  }
}
