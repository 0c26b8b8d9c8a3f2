/**
 * The memory stores: the store contract (the same one the PostgreSQL stores pass in
 * test/integration/stores.test.ts), and what only the memory ones offer a test: the writes made
 * inside a transaction, recorded with the handle they came with.
 */
import { describe, expect, it } from "vitest";
import { MemoryState, MemoryTransaction } from "../../src/state/memoryState.js";
import { memoryStores } from "../../src/state/memoryStores.js";
import { memoryHarness, storeContract } from "../harness/storeContract.js";

storeContract("memory", () => Promise.resolve(memoryHarness()));

async function created(pipeline = "p1") {
  const stores = memoryStores({ pipeline });
  await stores.checkpoints.migrate();
  await stores.checkpoints.create(0x100n, ["public.a"]);
  return stores;
}

describe("memory stores", () => {
  it("record a checkpoint write with its transaction, and apply it only when that transaction commits", async () => {
    const { checkpoints, state } = await created();
    const tx = state.begin();
    const checkpoint = { commitLsn: 0x200n, endLsn: 0x208n, commitTime: null };
    await checkpoints.writeCheckpoint(tx, checkpoint);
    expect(state.writes).toEqual([{ kind: "checkpoint", tx, pipeline: "p1", checkpoint }]);
    expect((await checkpoints.load())?.checkpoint.endLsn).toBe(0x100n);
    tx.commit();
    expect(tx.status).toBe("committed");
    expect((await checkpoints.load())?.checkpoint).toEqual(checkpoint);
    await expect(checkpoints.writeCheckpoint(tx, checkpoint)).rejects.toThrow(/committed/);
  });

  it("drop a rolled-back transaction's writes: copied rows, checkpoint and resync progress", async () => {
    const { checkpoints, resyncs, state } = await created();
    const resync = await resyncs.create("public.a", null);
    const tx = state.begin();
    await checkpoints.addCopiedRows(tx, "public.a", 5);
    await checkpoints.writeCheckpoint(tx, { commitLsn: 0x200n, endLsn: 0x208n, commitTime: null });
    state.execute(tx, resyncs.progressStatement(resync.id, ["9"], 9, true));
    expect(state.writes.map((w) => [w.kind, w.tx])).toEqual([["copiedRows", tx], ["checkpoint", tx], ["statement", tx]]);
    tx.rollback();
    expect((await checkpoints.tables())[0]?.rowsCopied).toBe(0);
    expect((await checkpoints.load())?.checkpoint.endLsn).toBe(0x100n);
    expect(await resyncs.get(resync.id)).toEqual(resync);
  });

  it("apply a write at once for a handle that is not a MemoryTransaction, still recording it", async () => {
    const { checkpoints, state } = await created();
    const client = { name: "a stand-in for a pg client" };
    await checkpoints.addCopiedRows(client, "public.a", 3);
    expect((await checkpoints.tables())[0]?.rowsCopied).toBe(3);
    expect(state.writes).toEqual([{ kind: "copiedRows", tx: client, pipeline: "p1", table: "public.a", rows: 3 }]);
    expect(state.begin()).toBeInstanceOf(MemoryTransaction);
  });

  it("reject (never throw) before migrate, as a query on a missing schema does", async () => {
    const { checkpoints } = memoryStores({ pipeline: "p1" });
    const tables = checkpoints.tables();
    await expect(tables).rejects.toThrow(/state schema "_pgferry" does not exist/);
    await expect(checkpoints.failTable("public.a", "x").catch(() => "caught")).resolves.toBe("caught");
  });

  it("refuse to execute a statement another state made", async () => {
    const { resyncs } = await created();
    const other = new MemoryState();
    expect(() => other.execute(other.begin(), resyncs.progressStatement("x", null, 0, false))).toThrow(/not a statement of this memory state/);
  });
});
