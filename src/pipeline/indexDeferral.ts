/**
 * Secondary indexes built after the initial copy (snapshot.deferIndexes; docs/design.md, "Secondary
 * indexes built after the copy"). Before a target table takes its first copied row, its deferrable
 * indexes (catalog/indexCatalog.ts) are dropped and recorded in the state schema in the same target
 * transaction; once every source feeding the table is copied, each is created again from its record
 * and the record deleted in the same transaction. An index is thus always in the catalog or in the
 * record, so a crash at any moment loses none: on start-up, the records of tables that are ready
 * are built again (`restore`), those of tables still to copy wait for their copy.
 *
 * Builds run on sessions of their own (not the copy workers'), at most `concurrency` at once, each
 * with `maintenance_work_mem` = `buildMemory`, so the copy of other tables goes on meanwhile.
 */
import PQueue from "p-queue";
import pg from "pg";
import type { Logger } from "pino";
import { deferrableIndexes, keepReason, readIndexes, restoreStatements } from "../catalog/indexCatalog.js";
import type { TargetTable } from "../plan/targetTable.js";
import type { Endpoint } from "../sql/endpoint.js";
import { qualifiedName } from "../sql/quote.js";
import { settleAll } from "./settleAll.js";
import type { DeferredIndex, DeferredIndexStore } from "../state/deferredIndexes.js";

export interface IndexDeferralOptions {
  /** Opens the build sessions. */
  target: Endpoint;
  /** A pool on the target: reads the records, cancels builds on stop. */
  pool: pg.Pool;
  store: DeferredIndexStore;
  /** maintenance_work_mem of a build session, in bytes. */
  buildMemory: number;
  /** Builds at once (the snapshot's worker count). */
  concurrency: number;
  log: Logger;
  /** Stopping the pipeline cancels the builds in flight (their records stay for the next start). */
  signal?: AbortSignal;
}

/** `schema.table` as the plan spells a target table's id. */
const tableId = (index: { schema: string; table: string }) => `${index.schema}.${index.table}`;
const seconds = (since: number) => Number(((performance.now() - since) / 1000).toFixed(3));

/**
 * Every name qualified both when a definition is read and when it is replayed (as pg_dump does), so
 * it means the same objects whatever the role's search_path.
 */
const EMPTY_SEARCH_PATH = "SELECT pg_catalog.set_config('search_path', '', true)";

export class IndexDeferral {
  private readonly options: IndexDeferralOptions;
  /** At most `concurrency` builds at once; the others wait their turn. */
  private readonly builds: PQueue;
  /** Build sessions in use, by backend pid, to cancel them on stop. */
  private readonly building = new Map<pg.Client, number>();
  private stopped = false;

  private readonly onAbort = () => void this.stop();

  constructor(options: IndexDeferralOptions) {
    this.options = options;
    this.builds = new PQueue({ concurrency: Math.max(1, options.concurrency) });
    options.signal?.addEventListener("abort", this.onAbort, { once: true });
    if (options.signal?.aborted) this.stopped = true;
  }

  /**
   * Drops the deferrable indexes of `table` and records them, in one transaction on `client` (a
   * snapshot worker's target session, outside a transaction). An index dropped before (a copy
   * started over) is no longer in the catalog, so it is neither dropped nor recorded again. A table
   * pgferry's role does not own keeps its indexes (logged with the fix): refusing would stop a
   * snapshot that only runs slower.
   */
  async defer(client: pg.ClientBase, table: TargetTable): Promise<number> {
    const { log, store } = this.options;
    const dropped: { index: string; method: string; seconds: number }[] = [];
    await client.query("BEGIN");
    try {
      await client.query(EMPTY_SEARCH_PATH);
      const catalog = await readIndexes(client, table);
      const deferrable = deferrableIndexes(catalog);
      const kept = catalog.indexes.flatMap((i) => (deferrable.includes(i) ? [] : [`${i.name} (${keepReason(i) ?? "table"})`]));
      if (kept.length > 0) log.debug({ table: table.id, kept }, "indexes kept during the copy");
      if (catalog.kind === "p" && catalog.indexes.length > 0) {
        log.info({ table: table.id }, "indexes of a partitioned table are kept during its copy (recreating them would not give back the partitions' index names)");
      } else if (deferrable.length > 0 && !catalog.owned) {
        log.warn(
          { table: table.id, owner: catalog.owner, indexes: deferrable.map((i) => i.name), hint: `GRANT ${catalog.owner ?? "the table's owner"} TO pgferry's target role (or make it the owner), or set snapshot.deferIndexes: false to silence this` },
          "secondary indexes kept during the copy: pgferry's role does not own the table, so it cannot drop and create them",
        );
      } else {
        for (const index of deferrable) {
          const started = performance.now();
          await store.record(client, {
            schema: table.schema, table: table.name, name: index.name, definition: index.definition, tablespace: index.tablespace,
            restore: restoreStatements(table, index), method: index.method,
          });
          await client.query(`DROP INDEX ${qualifiedName({ schema: table.schema, name: index.name })}`);
          dropped.push({ index: index.name, method: index.method, seconds: seconds(started) });
        }
      }
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
    for (const d of dropped) log.info({ table: table.id, ...d }, "index dropped until the table is copied");
    return dropped.length;
  }

  /** Builds the recorded indexes of the target tables `tables` (ids `schema.table`); resolves when all are in. */
  async rebuild(tables: ReadonlySet<string>): Promise<void> {
    await this.rebuildWhere((index) => tables.has(tableId(index)));
  }

  /**
   * Start-up: builds the recorded indexes of every table but those about to be copied (`copying`):
   * their copy ended before the last stop, or they are no longer mapped. Records of another pipeline
   * are left to it unless the table is one of `mapped`.
   */
  async restore(copying: ReadonlySet<string>, mapped: ReadonlySet<string>): Promise<void> {
    const { store } = this.options;
    await this.rebuildWhere((index) => !copying.has(tableId(index)) && (index.pipeline === store.pipeline || mapped.has(tableId(index))));
  }

  /**
   * Cancels the builds running, refuses new ones, and waits for the running ones to end. The cancel
   * is sent again while they run: one that reached a session between two statements is lost.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.options.signal?.removeEventListener("abort", this.onAbort);
    // The builds still waiting start and end at once (`stopped`); the running ones are cancelled.
    for (let round = 0; this.builds.pending > 0 || this.builds.size > 0; round += 1) {
      if (round % 25 === 0) {
        await Promise.all([...this.building.values()].map((pid) => this.options.pool.query("SELECT pg_cancel_backend($1)", [pid]).catch(() => undefined)));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async rebuildWhere(wanted: (index: DeferredIndex) => boolean): Promise<void> {
    const records = (await this.options.store.list(this.options.pool)).filter(wanted);
    await settleAll(
      records.map((index) =>
        this.builds.add(async () => {
          if (this.stopped) throw new Error("index builds stopped");
          return this.build(index);
        }),
      ),
    );
  }

  /**
   * A parallel build whose shared memory the server cannot allocate (53100: a container's small
   * /dev/shm; pgvector's parallel HNSW build asks for maintenance_work_mem of it) is built again
   * without parallel workers rather than failing the snapshot.
   */
  private async build(index: DeferredIndex): Promise<void> {
    try {
      await this.buildOnce(index, true);
    } catch (error) {
      if ((error as { code?: unknown }).code !== "53100" || this.stopped) throw error;
      this.options.log.warn({ table: tableId(index), index: index.name, err: error }, "parallel index build could not get its shared memory; building it again without parallel workers");
      await this.buildOnce(index, false);
    }
  }

  /**
   * One index, in one transaction with the deletion of its record. The record is locked first, so a
   * build of the same index queued twice (start-up and copy end) runs once; an index already there
   * (created by hand) only loses its record.
   */
  private async buildOnce(index: DeferredIndex, parallel: boolean): Promise<void> {
    const { target, store, log, buildMemory } = this.options;
    const client = await target.client("pgferry-index-build");
    this.building.set(client, (client as unknown as { processID: number }).processID);
    const started = performance.now();
    try {
      await client.query("BEGIN");
      await client.query(EMPTY_SEARCH_PATH);
      // A build sorts (btree) or holds its graph (HNSW) in maintenance_work_mem; the tablespace as before.
      await client.query("SELECT pg_catalog.set_config('maintenance_work_mem', $1, true), pg_catalog.set_config('default_tablespace', $2, true)", [
        `${Math.max(1024, Math.floor(buildMemory / 1024))}kB`,
        index.tablespace ?? "",
      ]);
      // A build orphaned by a killed pgferry notices within a second that nobody will commit it (PostgreSQL 14+),
      // instead of building on for minutes while holding the record the next start waits for.
      await client.query("SELECT pg_catalog.set_config('client_connection_check_interval', '1000', true) WHERE pg_catalog.current_setting('server_version_num')::int >= 140000");
      if (!parallel) await client.query("SELECT pg_catalog.set_config('max_parallel_maintenance_workers', '0', true)");
      if (!(await store.claim(client, index))) {
        await client.query("ROLLBACK");
        return;
      }
      if (this.stopped) throw new Error("index builds stopped");
      const name = qualifiedName({ schema: index.schema, name: index.name });
      const { rows } = await client.query<{ found: boolean }>("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS found", [name]);
      const exists = rows[0]?.found ?? false;
      if (!exists) {
        await client.query(index.definition);
        for (const statement of index.restore) await client.query(statement);
      }
      await store.forget(client, index);
      await client.query("COMMIT");
      log.info({ table: tableId(index), index: index.name, method: index.method, seconds: seconds(started) }, exists ? "index already there; its record dropped" : "index rebuilt");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      // Named, as a copy's error is: an expression the copied rows make fail shows here, not in the COPY.
      if (error instanceof pg.DatabaseError) error.message = `building index ${index.schema}.${index.name} of ${tableId(index)} after its copy: ${error.message}`;
      throw error;
    } finally {
      this.building.delete(client);
      await client.end().catch(() => undefined);
    }
  }
}
