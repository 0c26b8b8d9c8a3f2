/**
 * What every CheckpointStore and ResyncStore implementation does on the same calls: run against the
 * PostgreSQL stores (test/integration/stores.test.ts) and the memory ones (test/unit/checkpointStore.test.ts).
 * `storeTrace` runs one fixed sequence of calls and returns what each step read back, with times
 * and ids made comparable, so two implementations can be compared result for result.
 */
import { describe, expect, it } from "vitest";
import type { Statement } from "../../src/apply/types.js";
import type { CheckpointStore, TableStatus, TransactionHandle } from "../../src/state/checkpointStore.js";
import { MemoryState } from "../../src/state/memoryState.js";
import { memoryStores } from "../../src/state/memoryStores.js";
import type { ResyncStore } from "../../src/state/resyncStore.js";

export interface StoreHarness {
  /** The stores of `pipeline`; every pipeline of one harness shares one (initially empty, unmigrated) state. */
  stores(pipeline: string): { checkpoints: CheckpointStore; resyncs: ResyncStore };
  /** Runs `work` in a target transaction, then commits it, or rolls it back (also when `work` fails). */
  transaction(outcome: "commit" | "rollback", work: (tx: TransactionHandle) => Promise<void>): Promise<void>;
  /** Runs a store's statement inside `tx`, as the applier does. */
  execute(tx: TransactionHandle, statement: Statement): Promise<void>;
}

/** The memory stores as a harness: transactions are MemoryTransactions. */
export function memoryHarness(): StoreHarness {
  const state = new MemoryState();
  return {
    stores: (pipeline) => memoryStores({ pipeline, state }),
    async transaction(outcome, work) {
      const tx = state.begin();
      try {
        await work(tx);
      } catch (error) {
        tx.rollback();
        throw error;
      }
      if (outcome === "commit") tx.commit();
      else tx.rollback();
    },
    execute: (tx, statement) => Promise.resolve(state.execute(tx, statement)),
  };
}

const A = "public.accounts";
const B = "public.orders";
const C = "sales.invoices";

function pending(table: string): TableStatus {
  return { table, state: "pending", syncLsn: null, rowsCopied: 0, rowsEstimated: null, startedAt: null, finishedAt: null, error: null };
}

async function table(store: CheckpointStore, name: string): Promise<TableStatus | undefined> {
  return (await store.tables()).find((t) => t.table === name);
}

async function migrated(harness: StoreHarness, pipeline = "p1", tables: readonly string[] = [A, B]): Promise<{ checkpoints: CheckpointStore; resyncs: ResyncStore }> {
  const stores = harness.stores(pipeline);
  await stores.checkpoints.migrate();
  await stores.checkpoints.create(0x1000n, tables);
  return stores;
}

/** The contract, as a describe block; `fresh` gives a harness on a new, empty state for each test. */
export function storeContract(name: string, fresh: () => Promise<StoreHarness>): void {
  describe(`${name} stores: the store contract`, () => {
    it("have no storage before migrate; migrate is idempotent; no pipeline state until create", async () => {
      const { checkpoints } = (await fresh()).stores("p1");
      expect(await checkpoints.exists()).toBe(false);
      await checkpoints.migrate();
      expect(await checkpoints.exists()).toBe(true);
      await checkpoints.migrate();
      expect(await checkpoints.exists()).toBe(true);
      expect(await checkpoints.load()).toBeNull();
      expect(await checkpoints.summary()).toBeNull();
      expect(await checkpoints.tables()).toEqual([]);
    });

    it("create records the consistent point as the checkpoint's end, every table pending, ordered by name; a second create fails", async () => {
      const harness = await fresh();
      const { checkpoints } = await migrated(harness, "p1", [B, A]);
      expect(await checkpoints.load()).toEqual({ consistentPoint: 0x1000n, checkpoint: { commitLsn: 0n, endLsn: 0x1000n, commitTime: null } });
      const summary = await checkpoints.summary();
      expect(summary?.createdAt).toBeInstanceOf(Date);
      expect(summary?.updatedAt.getTime()).toBe(summary?.createdAt.getTime());
      expect(await checkpoints.tables()).toEqual([pending(A), pending(B)]);
      await expect(checkpoints.create(0x2000n, [A])).rejects.toThrow();
      expect((await checkpoints.load())?.consistentPoint).toBe(0x1000n);
    });

    it("walk a table pending → copying → ready, counting only rows whose transaction committed", async () => {
      const harness = await fresh();
      const { checkpoints } = await migrated(harness);
      await checkpoints.startCopy(A, 1000);
      const copying = await table(checkpoints, A);
      expect(copying).toMatchObject({ state: "copying", rowsCopied: 0, rowsEstimated: 1000, finishedAt: null, error: null, syncLsn: null });
      expect(copying?.startedAt).toBeInstanceOf(Date);
      await harness.transaction("commit", (tx) => checkpoints.addCopiedRows(tx, A, 300));
      await harness.transaction("commit", (tx) => checkpoints.addCopiedRows(tx, A, 200));
      await harness.transaction("rollback", (tx) => checkpoints.addCopiedRows(tx, A, 99));
      expect((await table(checkpoints, A))?.rowsCopied).toBe(500);
      await checkpoints.finishCopy(A, 0x2000n);
      const ready = await table(checkpoints, A);
      expect(ready).toMatchObject({ state: "ready", syncLsn: 0x2000n, rowsCopied: 500, rowsEstimated: 1000, error: null });
      expect(ready?.finishedAt).toBeInstanceOf(Date);
      expect(await table(checkpoints, B)).toEqual(pending(B));
    });

    it("mark a failed copy errored with its error and count; the next copy starts over", async () => {
      const harness = await fresh();
      const { checkpoints } = await migrated(harness);
      await checkpoints.startCopy(B, null);
      await harness.transaction("commit", (tx) => checkpoints.addCopiedRows(tx, B, 10));
      await checkpoints.failTable(B, "snapshot of public.orders → sales.orders: value too long");
      expect(await table(checkpoints, B)).toMatchObject({
        state: "errored", error: "snapshot of public.orders → sales.orders: value too long", rowsCopied: 10, rowsEstimated: null, finishedAt: null, syncLsn: null,
      });
      await checkpoints.startCopy(B, 5);
      expect(await table(checkpoints, B)).toMatchObject({ state: "copying", error: null, rowsCopied: 0, rowsEstimated: 5 });
      await checkpoints.finishCopy(B, 0x3000n);
      expect(await table(checkpoints, B)).toMatchObject({ state: "ready", error: null, syncLsn: 0x3000n });
    });

    it("add new tables as pending and keep existing ones as they are; a pipeline without state cannot", async () => {
      const harness = await fresh();
      const { checkpoints } = await migrated(harness);
      await checkpoints.startCopy(A, 7);
      await checkpoints.addTables([A, C]);
      expect((await checkpoints.tables()).map((t) => [t.table, t.state])).toEqual([[A, "copying"], [B, "pending"], [C, "pending"]]);
      await expect(harness.stores("p2").checkpoints.addTables([A])).rejects.toThrow();
    });

    it("write the checkpoint inside a transaction: kept on commit, gone on rollback; without pipeline state it fails", async () => {
      const harness = await fresh();
      const { checkpoints } = await migrated(harness);
      const checkpoint = { commitLsn: 0x3000n, endLsn: 0x3010n, commitTime: new Date("2024-01-02T03:04:05.678Z") };
      await harness.transaction("commit", (tx) => checkpoints.writeCheckpoint(tx, checkpoint));
      expect(await checkpoints.load()).toEqual({ consistentPoint: 0x1000n, checkpoint });
      await harness.transaction("rollback", (tx) => checkpoints.writeCheckpoint(tx, { commitLsn: 0x4000n, endLsn: 0x4010n, commitTime: null }));
      expect((await checkpoints.load())?.checkpoint).toEqual(checkpoint);
      const summary = await checkpoints.summary();
      expect(summary!.updatedAt.getTime()).toBeGreaterThanOrEqual(summary!.createdAt.getTime());
      const other = harness.stores("p2").checkpoints;
      await expect(harness.transaction("commit", (tx) => other.writeCheckpoint(tx, checkpoint))).rejects.toThrow(/pipeline p2 has no state row/);
    });

    it("reset forgets the pipeline, its tables and its resyncs, and nothing of another pipeline", async () => {
      const harness = await fresh();
      const p1 = await migrated(harness, "p1");
      const p2 = await migrated(harness, "p2", [C]);
      const r1 = await p1.resyncs.create(A, null);
      const r2 = await p2.resyncs.create(C, null);
      await p1.checkpoints.startCopy(A, 1);
      await p1.checkpoints.reset();
      expect(await p1.checkpoints.load()).toBeNull();
      expect(await p1.checkpoints.tables()).toEqual([]);
      expect(await p1.resyncs.get(r1.id)).toBeUndefined();
      expect(await p1.resyncs.running()).toEqual([]);
      expect(await p2.checkpoints.load()).not.toBeNull();
      expect(await p2.checkpoints.tables()).toEqual([pending(C)]);
      expect((await p2.resyncs.get(r2.id))?.state).toBe("running");
      // Created again, it starts over.
      await p1.checkpoints.create(0x5000n, [B]);
      expect(await p1.checkpoints.load()).toEqual({ consistentPoint: 0x5000n, checkpoint: { commitLsn: 0n, endLsn: 0x5000n, commitTime: null } });
      expect(await p1.checkpoints.tables()).toEqual([pending(B)]);
    });

    it("record a resync running → done, its progress landing only with its transaction", async () => {
      const harness = await fresh();
      const { resyncs } = await migrated(harness);
      const created = await resyncs.create(A, 500);
      expect(created).toMatchObject({ table: A, state: "running", lastKey: null, rowsDone: 0, chunksDone: 0, rowsEstimated: 500, finishedAt: null, error: null });
      expect(typeof created.id).toBe("string");
      expect(created.startedAt).toBeInstanceOf(Date);
      expect(await resyncs.get(created.id)).toEqual(created);

      const progress = (key: string[] | null, rows: number, done: boolean, outcome: "commit" | "rollback" = "commit") =>
        harness.transaction(outcome, (tx) => harness.execute(tx, resyncs.progressStatement(created.id, key, rows, done)));
      const statement = resyncs.progressStatement(created.id, ["1"], 1, false);
      expect(statement).toMatchObject({ name: "pgferry_resync_progress", op: "update", rows: 0 });
      expect(statement.table).toMatch(/resyncs$/);

      await progress(["10"], 10, false);
      expect(await resyncs.get(created.id)).toMatchObject({ state: "running", lastKey: ["10"], rowsDone: 10, chunksDone: 1, finishedAt: null });
      await progress(["99"], 99, true, "rollback");
      await progress(null, 0, false);
      expect(await resyncs.get(created.id)).toMatchObject({ state: "running", lastKey: ["10"], rowsDone: 10, chunksDone: 2 });
      await progress(["20"], 5, true);
      const done = await resyncs.get(created.id);
      expect(done).toMatchObject({ state: "done", lastKey: ["20"], rowsDone: 15, chunksDone: 3, error: null });
      expect(done?.finishedAt).toBeInstanceOf(Date);
      expect(await resyncs.running()).toEqual([]);
    });

    it("list a pipeline's running resyncs oldest first, fail one with its error, and see only their own", async () => {
      const harness = await fresh();
      const p1 = await migrated(harness, "p1");
      const p2 = await migrated(harness, "p2");
      const r1 = await p1.resyncs.create(A, null);
      const r2 = await p1.resyncs.create(B, 3);
      const r3 = await p2.resyncs.create(A, null);
      expect((await p1.resyncs.running()).map((r) => r.id)).toEqual([r1.id, r2.id]);
      await p1.resyncs.fail(r1.id, "the table is no longer in the mapping");
      const failed = await p1.resyncs.get(r1.id);
      expect(failed).toMatchObject({ state: "failed", error: "the table is no longer in the mapping" });
      expect(failed?.finishedAt).toBeInstanceOf(Date);
      expect(await p1.resyncs.running()).toEqual([r2]);
      expect(await p2.resyncs.get(r1.id)).toBeUndefined();
      expect((await p2.resyncs.running()).map((r) => r.id)).toEqual([r3.id]);
      expect(await p1.resyncs.get("no-such-resync")).toBeUndefined();
      await expect(harness.stores("p3").resyncs.create(A, null)).rejects.toThrow();
    });
  });
}

type Traced = string | number | boolean | null | bigint | Traced[] | { [key: string]: Traced };

/** Dates become "<date>", resync ids their order of creation: what two implementations must agree on. */
function comparable(value: unknown, ids: Map<string, string>): Traced {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return "<date>";
  if (Array.isArray(value)) return value.map((v) => comparable(v, ids));
  if (typeof value === "object") {
    const out: { [key: string]: Traced } = {};
    for (const [key, v] of Object.entries(value)) {
      if (key === "id" && typeof v === "string") {
        if (!ids.has(v)) ids.set(v, `<resync ${ids.size + 1}>`);
        out[key] = ids.get(v)!;
      } else {
        out[key] = comparable(v, ids);
      }
    }
    return out;
  }
  return value as Traced;
}

/** One sequence of calls through every method, and what each step read back (or that it failed). */
export async function storeTrace(harness: StoreHarness): Promise<Traced[]> {
  const ids = new Map<string, string>();
  const trace: Traced[] = [];
  const p1 = harness.stores("p1");
  const p2 = harness.stores("p2");
  let step = 0;
  trace.push({ step: "0 before migrate", exists: await p1.checkpoints.exists() });
  const record = async (label: string, call: () => Promise<unknown>) => {
    step += 1;
    const result = await call().then(
      (value) => comparable(value, ids),
      () => "<failed>",
    );
    trace.push({
      step: `${step} ${label}`,
      result,
      exists: await p1.checkpoints.exists(),
      p1: (await p1.checkpoints.exists()) ? comparable({ state: await p1.checkpoints.summary(), tables: await p1.checkpoints.tables(), resyncs: await p1.resyncs.running() }, ids) : null,
    });
  };
  await record("migrate", () => p1.checkpoints.migrate());
  await record("addTables without state", () => p1.checkpoints.addTables([A]));
  await record("create", () => p1.checkpoints.create(0x10n, [B, A]));
  await record("create again", () => p1.checkpoints.create(0x20n, [C]));
  await record("create p2", () => p2.checkpoints.create(0x30n, [C]));
  await record("startCopy", () => p1.checkpoints.startCopy(A, 40));
  await record("startCopy of an unknown table", () => p1.checkpoints.startCopy(C, 1));
  await record("addCopiedRows committed", () => harness.transaction("commit", (tx) => p1.checkpoints.addCopiedRows(tx, A, 25)));
  await record("addCopiedRows rolled back", () => harness.transaction("rollback", (tx) => p1.checkpoints.addCopiedRows(tx, A, 5)));
  await record("finishCopy", () => p1.checkpoints.finishCopy(A, 0x15n));
  await record("startCopy B", () => p1.checkpoints.startCopy(B, null));
  await record("failTable", () => p1.checkpoints.failTable(B, "boom"));
  await record("addTables", () => p1.checkpoints.addTables([A, C]));
  await record("writeCheckpoint", () => harness.transaction("commit", (tx) => p1.checkpoints.writeCheckpoint(tx, { commitLsn: 0x40n, endLsn: 0x48n, commitTime: new Date(0) })));
  await record("writeCheckpoint rolled back", () => harness.transaction("rollback", (tx) => p1.checkpoints.writeCheckpoint(tx, { commitLsn: 0x50n, endLsn: 0x58n, commitTime: null })));
  await record("load", () => p1.checkpoints.load());
  const r1 = await p1.resyncs.create(A, 40);
  const r2 = await p1.resyncs.create(C, null);
  await record("resyncs created", () => Promise.resolve([r1, r2]));
  await record("resync progress", () => harness.transaction("commit", (tx) => harness.execute(tx, p1.resyncs.progressStatement(r1.id, ["5", "x"], 5, false))));
  await record("resync progress without a key", () => harness.transaction("commit", (tx) => harness.execute(tx, p1.resyncs.progressStatement(r1.id, null, 3, false))));
  await record("resync progress rolled back", () => harness.transaction("rollback", (tx) => harness.execute(tx, p1.resyncs.progressStatement(r1.id, ["9"], 9, true))));
  await record("resync done", () => harness.transaction("commit", (tx) => harness.execute(tx, p1.resyncs.progressStatement(r1.id, ["7"], 2, true))));
  await record("resync fail", () => p1.resyncs.fail(r2.id, "gone"));
  await record("resync get", () => Promise.all([p1.resyncs.get(r1.id), p1.resyncs.get(r2.id), p2.resyncs.get(r1.id), p1.resyncs.get("unknown")]).then((r) => r.map((x) => x ?? "<none>")));
  await record("resync of a pipeline without state", () => harness.stores("p3").resyncs.create(A, null));
  await record("writeCheckpoint without state", () => harness.transaction("commit", (tx) => harness.stores("p3").checkpoints.writeCheckpoint(tx, { commitLsn: 1n, endLsn: 1n, commitTime: null })));
  await record("reset", () => p1.checkpoints.reset());
  await record("resync get after reset", () => p1.resyncs.get(r1.id).then((r) => r ?? "<none>"));
  await record("p2 after reset of p1", () => Promise.all([p2.checkpoints.load(), p2.checkpoints.tables()]));
  await record("create after reset", () => p1.checkpoints.create(0x60n, [A]));
  return trace;
}
