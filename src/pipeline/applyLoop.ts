/**
 * Drains the change queue into target transactions. Consecutive source transactions are grouped
 * into one target transaction until a limit is reached (rows, bytes, age) or no more work is waiting
 * (so an idle stream is applied at once); changes are collapsed per key in a ChangeBuffer and flushed
 * set-based. A source transaction larger than the buffer is flushed progressively into the still-open
 * target transaction: memory stays bounded, atomicity is kept. The checkpoint is written in the same
 * target transaction, and only after COMMIT (with an asynchronous commit, once the target's WAL
 * flush passes it: flushedCommits.ts) is the source told the position is flushed.
 *
 * The target is an ApplyTarget: the PostgreSQL Applier in the daemon, an in-memory one in unit tests.
 */
import { ChangeBuffer } from "../apply/changeBuffer.js";
import type { GuardSettings } from "../apply/guardedStatements.js";
import type { Checkpoint } from "../plan/changes.js";
import type { ConflictCount } from "../apply/conflictGuard.js";
import type { ChangeQueue } from "./changeQueue.js";
import type { ChangeTransformer } from "../transform/changeTransformer.js";
import type { CommitResult, OrderedStatements, Statement } from "../apply/types.js";
import type { SourceChange, SourceTruncate } from "../plan/changes.js";
import { changeBytes, type CountedOp, type StreamEvent } from "./streamEvents.js";

/**
 * Where the loop's target transactions go: one open transaction at a time, opened by the first
 * `execute` after a `commit` or `rollback`. Implemented by the Applier (apply/applier.ts).
 */
export interface ApplyTarget {
  /** Runs statements, in order, inside the open target transaction (opening one if none is open). */
  execute(statements: readonly Statement[]): Promise<void>;
  /**
   * Writes `checkpoint` inside the open transaction (opening one if none is open) and commits it:
   * data and checkpoint become durable together. Resolves only once COMMIT has returned; nothing is
   * acknowledged before (docs/design.md, rule 2). Resolves with the conflicts the transaction's
   * guarded statements met, when the target judges any (a bidirectional pipeline), and, for an
   * asynchronous commit, where its WAL stands (durable only once flushed past it).
   */
  commit(checkpoint: Checkpoint): Promise<CommitResult | void>;
  /** Abandons the open transaction, if any: nothing of it is durable. */
  rollback(): Promise<void>;
}

export interface BatchLimits {
  maxRows: number;
  maxBytes: number;
  maxMs: number;
}

export interface AppliedBatch {
  transactions: number;
  changes: number;
  perTable: Map<string, Partial<Record<CountedOp, number>>>;
  seconds: number;
  checkpoint: Checkpoint;
  /** Conflicts the batch's guarded statements met and resolved (a bidirectional pipeline's only). */
  conflicts?: ConflictCount[];
  /** An asynchronous commit's WAL position on the target (CommitResult.wal): the checkpoint is durable once flushed past it. */
  wal?: CommitResult["wal"];
}

export interface ApplyLoopOptions {
  queue: ChangeQueue<StreamEvent>;
  target: ApplyTarget;
  transformer: ChangeTransformer;
  limits: BatchLimits;
  /** Called after each target COMMIT, with the checkpoint it committed: the position to acknowledge (once durable, see AppliedBatch.wal). */
  onCommitted(batch: AppliedBatch): void;
  /**
   * Up to this source commit LSN, apply one source transaction per target transaction, each change
   * in order (after a unique violation that batching may have caused; see ChangeBuffer.ordered).
   */
  orderedThrough?: bigint;
  /** Conflict detection: keyed changes become guarded statements (the target's Applier holds the same guard). */
  guard?: GuardSettings;
}

/** Source changes mapped together (one evaluation query per edge for SQL transforms). */
const TRANSFORM_RUN = 2000;

export class ApplyLoop {
  private readonly buffer: ChangeBuffer;
  private pending: (SourceChange | SourceTruncate | OrderedStatements)[] = [];
  /** Callbacks of ordered statements in the open target transaction, run after its COMMIT. */
  private afterCommit: (() => void)[] = [];
  private pendingBytes = 0;
  private rows = 0;
  private transactions = 0;
  private startedAt = 0;
  private perTable = new Map<string, Partial<Record<CountedOp, number>>>();
  private lastCommit: Checkpoint | undefined;
  /** Changes received after the last source commit (a transaction still arriving). */
  private openChanges = 0;
  private working = false;
  /** Commit LSN of the last source transaction committed to the target. */
  private committedLsn = 0n;

  constructor(private readonly options: ApplyLoopOptions) {
    this.buffer = new ChangeBuffer({ guard: options.guard });
  }

  /**
   * Target work (statements, then the commit) runs behind the loop: while the target executes one
   * batch, the next is taken from the queue, mapped and collapsed. At most one piece of work is in
   * flight; the next waits for it (so statements keep their order on the one apply connection).
   */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private failure: Error | undefined;

  /** True while a batch is being built or applied: the stream is not idle. */
  get busy(): boolean {
    return this.working || this.inFlight > 0 || this.rows > 0 || this.transactions > 0;
  }

  /** Runs until the queue is closed and drained. Work after the last complete source transaction is rolled back. */
  async run(): Promise<void> {
    try {
      await this.loop();
    } finally {
      await this.tail.catch(() => undefined);
    }
    if (this.failure !== undefined) throw this.failure;
  }

  /** Queues target work behind what is in flight, after waiting for the previous piece to finish. */
  private async behind(work: () => Promise<void>): Promise<void> {
    await this.tail;
    if (this.failure !== undefined) throw this.failure;
    this.inFlight += 1;
    this.tail = work().then(
      () => { this.inFlight -= 1; },
      (error: unknown) => {
        this.inFlight -= 1;
        this.failure = error instanceof Error ? error : new Error(String(error));
        this.options.queue.close(); // the loop stops taking; run() rethrows
      },
    );
  }

  private async loop(): Promise<void> {
    const { queue, limits } = this.options;
    for (;;) {
      const event = await queue.take();
      if (event === undefined || this.failure !== undefined) break;
      this.working = true;
      if (this.rows === 0 && this.transactions === 0) this.startedAt = performance.now();
      this.buffer.ordered = this.options.orderedThrough !== undefined && (this.lastCommit?.commitLsn ?? this.committedLsn) < this.options.orderedThrough;
      if (event.type === "commit") {
        this.lastCommit = { commitLsn: event.commitLsn, endLsn: event.endLsn, commitTime: event.commitTime, ...(event.commitMicros === undefined ? {} : { commitMicros: event.commitMicros }) };
        this.transactions += 1;
        this.openChanges = 0;
        const age = performance.now() - this.startedAt;
        if (this.buffer.ordered || queue.length === 0 || this.rows >= limits.maxRows || this.heldBytes >= limits.maxBytes || age >= limits.maxMs) {
          await this.commit();
        }
      } else {
        this.pending.push(event);
        this.pendingBytes += event.type === "change" ? changeBytes(event) : 128;
        this.rows += 1;
        this.openChanges += 1;
        if (event.type === "change") this.count(event.plan.id, event.resync ? "resync" : event.op);
        else if (event.type === "truncate") for (const plan of event.plans) this.count(plan.id, "truncate");
        else if (event.onApplied) this.afterCommit.push(event.onApplied);
        if (this.pending.length >= TRANSFORM_RUN || this.pendingBytes >= limits.maxBytes) await this.transformPending();
        // A source transaction larger than the batch goes out progressively, inside the open target transaction.
        if (this.buffer.rows >= limits.maxRows || this.buffer.bytes >= limits.maxBytes) {
          const statements = this.buffer.drain();
          await this.behind(() => this.options.target.execute(statements));
        }
      }
      this.working = false;
    }
    if (this.failure !== undefined) return;
    if (this.openChanges === 0 && this.lastCommit) await this.commit();
    else await this.behind(() => this.options.target.rollback());
    this.afterCommit = [];
  }

  private get heldBytes(): number {
    return this.buffer.bytes + this.pendingBytes;
  }

  private count(table: string, op: CountedOp): void {
    const counts = this.perTable.get(table) ?? {};
    counts[op] = (counts[op] ?? 0) + 1;
    this.perTable.set(table, counts);
  }

  private async transformPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const run = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const change of await this.options.transformer.transform(run)) this.buffer.add(change);
  }

  private async commit(): Promise<void> {
    const checkpoint = this.lastCommit;
    if (!checkpoint) return;
    await this.transformPending();
    const statements = this.buffer.drain();
    const startedAt = this.startedAt;
    const batch: AppliedBatch = {
      transactions: this.transactions,
      changes: this.rows,
      perTable: this.perTable,
      seconds: (performance.now() - this.startedAt) / 1000,
      checkpoint,
    };
    this.rows = 0;
    this.transactions = 0;
    this.perTable = new Map();
    this.lastCommit = undefined;
    const callbacks = this.afterCommit;
    this.afterCommit = [];
    const { target } = this.options;
    await this.behind(async () => {
      await target.execute(statements);
      const result = await target.commit(checkpoint);
      this.committedLsn = checkpoint.commitLsn;
      const conflicts = result?.conflicts ?? [];
      // Acknowledgeable only now, after the target COMMIT (docs/design.md, rule 2).
      this.options.onCommitted({
        ...batch,
        seconds: (performance.now() - startedAt) / 1000,
        ...(conflicts.length > 0 ? { conflicts } : {}),
        ...(result?.wal ? { wal: result.wal } : {}),
      });
      for (const callback of callbacks) callback();
    });
  }
}
