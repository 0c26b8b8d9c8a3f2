/**
 * The apply loop against an in-memory ApplyTarget: batches are executed, committed with the
 * checkpoint of their last source commit, and only then acknowledged (docs/design.md, rule 2);
 * nothing is acknowledged when the commit fails or the loop stops mid-transaction; batches end on
 * their row, byte and age limits; a big source transaction goes out progressively inside one open
 * target transaction (rule 5); the ordered retry applies change by change up to `orderedThrough`.
 * No database, no sleeps: conditions are awaited by yielding to the event loop, time is faked.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CommitResult, OrderedStatements, Statement } from "../../src/apply/types.js";
import { ApplyLoop, type AppliedBatch, type ApplyTarget, type BatchLimits } from "../../src/pipeline/applyLoop.js";
import { ChangeQueue } from "../../src/pipeline/changeQueue.js";
import { changeBytes, type StreamEvent } from "../../src/pipeline/streamEvents.js";
import type { SourceCommit } from "../../src/plan/changes.js";
import type { Checkpoint } from "../../src/plan/changes.js";
import { ChangeTransformer } from "../../src/transform/changeTransformer.js";
import { change, column, compilePlans, entry, table } from "../fixtures/plans.js";

const accountsSource = table("public.accounts", [column("id", "integer", { notNull: true }), column("name", "text")], ["id"]);
const [plan] = compilePlans([entry("public.accounts", "app.accounts")], [accountsSource], [table("app.accounts", accountsSource.columns, ["id"])]);

const insert = (id: number, name = `n${id}`) => change(plan!, "insert", { new: [String(id), name] });
const update = (id: number, name: string) => change(plan!, "update", { new: [String(id), name] });
const commit = (lsn: number): SourceCommit => ({ type: "commit", commitLsn: BigInt(lsn), endLsn: BigInt(lsn) + 1n, commitTime: new Date(0) });

/** What happened, in order, across the target and the acknowledgements. */
type Entry = { kind: "execute"; rows: number; statements: Statement[] } | { kind: "commit"; lsn: bigint } | { kind: "rollback" } | { kind: "ack"; lsn: bigint };

/** Target transactions in memory: statements pile up in the open one; commit makes them durable with the checkpoint. */
class FakeTarget implements ApplyTarget {
  readonly log: Entry[] = [];
  readonly durable: { checkpoint: Checkpoint; statements: Statement[] }[] = [];
  /** Target transactions opened (by an execute or commit with none open). */
  opened = 0;
  private open: Statement[] | null = null;
  /** When set, commit waits for it (a COMMIT the server has not answered yet). */
  commitGate: Promise<void> | undefined;
  /** When set, commit fails with it (the server or the connection died before COMMIT returned). */
  commitError: Error | undefined;
  /** When set, commits are asynchronous: each returns this WAL position (CommitResult.wal). */
  commitWal: CommitResult["wal"];

  private begin(): Statement[] {
    if (!this.open) {
      this.open = [];
      this.opened += 1;
    }
    return this.open;
  }

  execute(statements: readonly Statement[]): Promise<void> {
    this.begin().push(...statements);
    if (statements.length > 0) this.log.push({ kind: "execute", rows: statements.reduce((n, s) => n + s.rows, 0), statements: [...statements] });
    return Promise.resolve();
  }

  async commit(checkpoint: Checkpoint): Promise<CommitResult | void> {
    const statements = this.begin();
    this.log.push({ kind: "commit", lsn: checkpoint.commitLsn });
    await this.commitGate;
    if (this.commitError) throw this.commitError;
    this.durable.push({ checkpoint, statements });
    this.open = null;
    if (this.commitWal) return { conflicts: [], wal: this.commitWal };
  }

  /** Calls, including those with no transaction open (a no-op, as on the Applier). */
  rollbacks = 0;

  rollback(): Promise<void> {
    this.rollbacks += 1;
    if (this.open) this.log.push({ kind: "rollback" });
    this.open = null;
    return Promise.resolve();
  }

  get executedRows(): number {
    return this.log.reduce((n, e) => n + (e.kind === "execute" ? e.rows : 0), 0);
  }
}

const roomy: BatchLimits = { maxRows: 10_000, maxBytes: 1 << 30, maxMs: 60_000 };

function setup(limits: Partial<BatchLimits> = {}, orderedThrough?: bigint) {
  const target = new FakeTarget();
  const queue = new ChangeQueue<StreamEvent>(1 << 30, () => undefined);
  const batches: AppliedBatch[] = [];
  const loop = new ApplyLoop({
    queue,
    target,
    transformer: new ChangeTransformer({ hooks: new Map() }),
    limits: { ...roomy, ...limits },
    orderedThrough,
    onCommitted: (batch) => {
      batches.push(batch);
      target.log.push({ kind: "ack", lsn: batch.checkpoint.commitLsn });
    },
  });
  const push = (...events: StreamEvent[]) => {
    for (const event of events) queue.push(event, 1);
  };
  return { target, queue, loop, batches, push };
}

/** Yields to the event loop until `condition` holds (the loop's work is all promise callbacks: no time passes). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i += 1) {
    if (condition()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

const kinds = (log: Entry[]) => log.map((e) => (e.kind === "execute" ? `execute ${e.rows}` : e.kind === "rollback" ? "rollback" : `${e.kind} ${e.lsn}`));

afterEach(() => {
  vi.useRealTimers();
});

describe("commit and acknowledgement (rule 2)", () => {
  it("executes a batch, commits it with the checkpoint of its last source commit, and only then acknowledges it", async () => {
    const { target, queue, loop, batches, push } = setup();
    const gate = deferred();
    target.commitGate = gate.promise;
    push(insert(1), insert(2), commit(10), insert(3), commit(20));
    const running = loop.run();
    await until(() => target.log.some((e) => e.kind === "commit"), "the commit");
    // COMMIT sent but not answered: nothing is acknowledged yet.
    expect(kinds(target.log)).toEqual(["execute 3", "commit 20"]);
    expect(batches).toEqual([]);
    expect(loop.busy).toBe(true);
    gate.resolve();
    await until(() => batches.length === 1, "the acknowledgement");
    expect(kinds(target.log)).toEqual(["execute 3", "commit 20", "ack 20"]);
    expect(target.durable.map((d) => d.checkpoint)).toEqual([{ commitLsn: 20n, endLsn: 21n, commitTime: new Date(0) }]);
    expect(batches[0]).toMatchObject({ transactions: 2, changes: 3, checkpoint: { commitLsn: 20n, endLsn: 21n } });
    expect(batches[0]!.perTable.get("public.accounts")).toEqual({ insert: 3 });
    queue.close();
    await running;
    expect(target.opened).toBe(1);
  });

  it("hands an asynchronous commit's WAL position on with the batch (acknowledged once flushed past it), and none for a synchronous one", async () => {
    const { target, queue, loop, batches, push } = setup();
    push(insert(1), commit(10));
    const running = loop.run();
    await until(() => batches.length === 1, "the synchronous commit");
    target.commitWal = { commitEnd: 7000n, flushed: 6000n };
    push(insert(2), commit(20));
    await until(() => batches.length === 2, "the asynchronous commit");
    queue.close();
    await running;
    expect(batches[0]!.wal).toBeUndefined();
    expect(batches[1]).toMatchObject({ checkpoint: { commitLsn: 20n }, wal: { commitEnd: 7000n, flushed: 6000n } });
  });

  it("never acknowledges a batch whose commit fails, and stops with the error", async () => {
    const { target, queue, loop, batches, push } = setup();
    target.commitError = new Error("connection lost during COMMIT");
    push(insert(1), commit(10));
    queue.close();
    await expect(loop.run()).rejects.toThrow("connection lost during COMMIT");
    expect(kinds(target.log)).toEqual(["execute 1", "commit 10"]);
    expect(batches).toEqual([]);
    expect(target.durable).toEqual([]);
  });

  it("applies nothing after a failed commit", async () => {
    const { target, queue, loop, batches, push } = setup();
    const gate = deferred();
    target.commitGate = gate.promise;
    target.commitError = new Error("COMMIT failed");
    push(insert(1), commit(10));
    const running = loop.run();
    await until(() => target.log.some((e) => e.kind === "commit"), "the commit");
    push(insert(2), commit(20));
    queue.close();
    gate.resolve();
    await expect(running).rejects.toThrow("COMMIT failed");
    expect(batches).toEqual([]);
    expect(kinds(target.log)).toEqual(["execute 1", "commit 10"]);
    expect(queue.length).toBe(0); // taken while the COMMIT was pending, but never applied: the slot sends it again
  });

  it("rolls back, never acknowledging, when stopped after executing part of a source transaction", async () => {
    // Every change is mapped at once (maxBytes) and every two go out (maxRows).
    const { target, queue, loop, batches, push } = setup({ maxRows: 2, maxBytes: changeBytes(insert(1)) });
    push(insert(1), insert(2), insert(3));
    const running = loop.run();
    await until(() => target.executedRows >= 2, "a progressive flush");
    queue.close(); // the stream stopped before this transaction's commit arrived
    await running;
    expect(kinds(target.log)).toEqual(["execute 2", "rollback"]);
    expect(batches).toEqual([]);
    expect(target.durable).toEqual([]);
  });

  it("rolls back a complete source transaction that shares the open target transaction with an incomplete one", async () => {
    const { target, queue, loop, batches, push } = setup();
    push(insert(1), commit(10), insert(2));
    const running = loop.run();
    await until(() => queue.length === 0, "the queue to drain");
    queue.close();
    await running;
    expect(target.log.filter((e) => e.kind !== "execute")).toEqual([]);
    expect(target.rollbacks).toBe(1);
    expect(batches).toEqual([]);
  });

  it("commits what is complete when the queue closes after a source commit", async () => {
    const { target, queue, loop, batches, push } = setup();
    push(insert(1), commit(10));
    queue.close();
    await loop.run();
    expect(kinds(target.log)).toEqual(["execute 1", "commit 10", "ack 10"]);
    expect(batches).toHaveLength(1);
  });

  it("runs an ordered statement's callback only after its COMMIT", async () => {
    const { target, queue, loop, push } = setup();
    const gate = deferred();
    target.commitGate = gate.promise;
    const applied = vi.fn();
    const progress: OrderedStatements = {
      type: "statements",
      statements: [{ text: "UPDATE progress", values: [], rows: 0, table: "_pgferry.resyncs", op: "update" }],
      onApplied: applied,
    };
    push(insert(1), progress, commit(10));
    const running = loop.run();
    await until(() => target.log.some((e) => e.kind === "commit"), "the commit");
    expect(target.log[0]).toMatchObject({ kind: "execute" });
    expect((target.log[0] as { statements: Statement[] }).statements.map((s) => s.text)).toContain("UPDATE progress");
    expect(applied).not.toHaveBeenCalled();
    gate.resolve();
    await until(() => applied.mock.calls.length === 1, "the callback");
    queue.close();
    await running;
  });
});

describe("batching limits", () => {
  it("groups waiting source transactions into one target transaction", async () => {
    const { target, queue, loop, batches, push } = setup();
    for (let i = 1; i <= 5; i += 1) push(insert(i), commit(i * 10));
    queue.close();
    await loop.run();
    expect(kinds(target.log)).toEqual(["execute 5", "commit 50", "ack 50"]);
    expect(batches[0]!.transactions).toBe(5);
  });

  it("commits at maxRows", async () => {
    const { target, queue, loop, batches, push } = setup({ maxRows: 3 });
    for (let i = 1; i <= 5; i += 1) push(insert(i), commit(i * 10));
    queue.close();
    await loop.run();
    expect(kinds(target.log)).toEqual(["execute 3", "commit 30", "ack 30", "execute 2", "commit 50", "ack 50"]);
    expect(batches.map((b) => b.transactions)).toEqual([3, 2]);
  });

  it("commits once the bytes held reach maxBytes", async () => {
    const one = changeBytes(insert(1));
    const { target, queue, loop, batches, push } = setup({ maxBytes: Math.floor(one * 2.5) });
    for (let i = 1; i <= 10; i += 1) push(insert(i), commit(i * 10));
    queue.close();
    await loop.run();
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.at(-1)!.checkpoint.commitLsn).toBe(100n);
    expect(batches.reduce((n, b) => n + b.transactions, 0)).toBe(10);
    expect(target.executedRows).toBe(10);
    // Every acknowledgement follows its own commit.
    target.log.forEach((e, i) => {
      if (e.kind === "ack") expect(target.log[i - 1]).toEqual({ kind: "commit", lsn: e.lsn });
    });
  });

  it("commits a batch older than maxMs even while more work is waiting", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const { target, queue, loop, batches, push } = setup({ maxMs: 1000 });
    push(insert(1), commit(10), insert(2));
    const running = loop.run();
    await until(() => queue.length === 0, "the queue to drain");
    expect(batches).toEqual([]);
    // Younger than maxMs, with work waiting: the batch stays open.
    vi.advanceTimersByTime(500);
    push(commit(20), insert(3));
    await until(() => queue.length === 0, "the queue to drain");
    expect(batches).toEqual([]);
    // Older than maxMs: committed at the next source commit although work is still waiting.
    vi.advanceTimersByTime(500);
    push(commit(30), insert(4));
    await until(() => batches.length === 1, "the age commit");
    expect(batches[0]).toMatchObject({ transactions: 3, checkpoint: { commitLsn: 30n } });
    push(commit(40));
    queue.close();
    await running;
    expect(kinds(target.log)).toEqual(["execute 3", "commit 30", "ack 30", "execute 1", "commit 40", "ack 40"]);
  });
});

describe("a source transaction larger than a batch (rule 5)", () => {
  it("is flushed progressively into one open target transaction and committed only at its end", async () => {
    // Every change is mapped at once (maxBytes) and every three go out (maxRows).
    const { target, queue, loop, batches, push } = setup({ maxRows: 3, maxBytes: changeBytes(insert(1)) });
    for (let i = 1; i <= 10; i += 1) push(insert(i));
    const running = loop.run();
    await until(() => target.executedRows === 9, "three progressive flushes");
    expect(kinds(target.log)).toEqual(["execute 3", "execute 3", "execute 3"]);
    expect(target.opened).toBe(1);
    expect(batches).toEqual([]);
    push(commit(100));
    await until(() => batches.length === 1, "the commit");
    expect(kinds(target.log)).toEqual(["execute 3", "execute 3", "execute 3", "execute 1", "commit 100", "ack 100"]);
    expect(target.opened).toBe(1);
    expect(target.durable).toHaveLength(1);
    expect(target.durable[0]!.statements.reduce((n, s) => n + s.rows, 0)).toBe(10);
    expect(batches[0]).toMatchObject({ transactions: 1, changes: 10, checkpoint: { commitLsn: 100n } });
    queue.close();
    await running;
  });

  it("is flushed progressively on maxBytes too", async () => {
    const big = insert(1, "x".repeat(10_000));
    const { target, queue, loop, batches, push } = setup({ maxBytes: 5000 });
    push(big, insert(2, "y".repeat(10_000)));
    const running = loop.run();
    await until(() => target.executedRows === 2, "two progressive flushes");
    expect(kinds(target.log)).toEqual(["execute 1", "execute 1"]);
    push(commit(10));
    queue.close();
    await running;
    expect(kinds(target.log)).toEqual(["execute 1", "execute 1", "commit 10", "ack 10"]);
    expect(target.opened).toBe(1);
    expect(batches).toHaveLength(1);
  });
});

describe("ordered retry (orderedThrough)", () => {
  /** Two updates of one row per source transaction: collapsed into one upsert when batched, two statements in order. */
  function twoUpdates(id: number, lsn: number): StreamEvent[] {
    return [update(id, `a${id}`), update(id, `b${id}`), commit(lsn)];
  }

  it("applies each source transaction through orderedThrough alone, change by change, then batches again", async () => {
    const { target, queue, loop, batches, push } = setup({}, 20n);
    for (const [id, lsn] of [[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]] as const) push(...twoUpdates(id, lsn));
    queue.close();
    await loop.run();
    const committed = target.durable.map((d) => ({ lsn: d.checkpoint.commitLsn, statements: d.statements.map((s) => s.rows) }));
    // Through LSN 20: one target transaction per source transaction, one statement per change.
    expect(committed.slice(0, 2)).toEqual([{ lsn: 10n, statements: [1, 1] }, { lsn: 20n, statements: [1, 1] }]);
    expect(batches.slice(0, 2).map((b) => b.transactions)).toEqual([1, 1]);
    // After it: batched and collapsed again (the last batch holds several source transactions, one row per key).
    const last = target.durable.at(-1)!;
    expect(last.checkpoint.commitLsn).toBe(50n);
    expect(batches.at(-1)!.transactions).toBeGreaterThan(1);
    expect(last.statements.reduce((n, s) => n + s.rows, 0)).toBe(batches.at(-1)!.transactions);
    expect(last.statements).toHaveLength(1);
    expect(batches.reduce((n, b) => n + b.transactions, 0)).toBe(5);
  });

  it("batches and collapses everything without it", async () => {
    const { target, queue, loop, batches, push } = setup();
    for (const [id, lsn] of [[1, 10], [2, 20], [3, 30]] as const) push(...twoUpdates(id, lsn));
    queue.close();
    await loop.run();
    expect(batches.map((b) => b.transactions)).toEqual([3]);
    expect(target.durable[0]!.statements.map((s) => s.rows)).toEqual([3]);
  });
});
