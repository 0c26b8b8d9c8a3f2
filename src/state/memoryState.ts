/**
 * The stores in memory, for unit tests: what the PostgreSQL stores keep in the state schema, kept in
 * a MemoryState that a pipeline's checkpoint and resync stores share (several pipelines may share
 * one, as they share a schema). A write that must commit with a target transaction takes a
 * MemoryTransaction (from `state.begin()`) and lands only on its commit; every such write is
 * recorded in `state.writes` with the handle it came with, so a test can check it was inside the
 * transaction. Behaves like the PostgreSQL stores on the same calls (test/harness/storeContract.ts).
 */
import type { Statement } from "../apply/types.js";
import { PgferryError } from "../errors.js";
import { quoteIdent } from "../sql/quote.js";
import type { TableStatus, TransactionHandle } from "./checkpointStore.js";
import type { Checkpoint } from "../plan/changes.js";
import type { ResyncRecord } from "./resyncStore.js";

/** One pipeline's row and its tables. */
export interface MemoryPipeline {
  consistentPoint: bigint;
  checkpoint: Checkpoint;
  createdAt: Date;
  updatedAt: Date;
  tables: Map<string, TableStatus>;
}

export interface MemoryResync extends ResyncRecord {
  pipeline: string;
}

/** A write made inside a transaction, with the handle it was given. */
export type MemoryWrite =
  | { kind: "checkpoint"; tx: TransactionHandle; pipeline: string; checkpoint: Checkpoint }
  | { kind: "copiedRows"; tx: TransactionHandle; pipeline: string; table: string; rows: number }
  | { kind: "statement"; tx: TransactionHandle; statement: Statement };

/** A target transaction in memory: the writes given it apply on `commit`, in order, and are dropped on `rollback`. */
export class MemoryTransaction {
  private readonly staged: (() => void)[] = [];
  private state: "open" | "committed" | "rolled back" = "open";

  get status(): "open" | "committed" | "rolled back" {
    return this.state;
  }

  stage(apply: () => void): void {
    if (this.state !== "open") throw new Error(`the transaction is ${this.state}`);
    this.staged.push(apply);
  }

  commit(): void {
    if (this.state !== "open") throw new Error(`the transaction is ${this.state}`);
    this.state = "committed";
    for (const apply of this.staged.splice(0)) apply();
  }

  rollback(): void {
    this.state = "rolled back";
    this.staged.length = 0;
  }
}

export class MemoryState {
  /** Set by a checkpoint store's `migrate` (the state schema exists). */
  migrated = false;
  readonly pipelines = new Map<string, MemoryPipeline>();
  /** Resyncs of every pipeline, in creation order. */
  readonly resyncs = new Map<string, MemoryResync>();
  /** Every write made inside a transaction (committed or not), in call order. */
  readonly writes: MemoryWrite[] = [];
  private readonly effects = new WeakMap<Statement, () => void>();

  /** `schema` only names the state in messages, as the state schema does for the PostgreSQL stores. */
  constructor(readonly schema = "_pgferry") {}

  begin(): MemoryTransaction {
    return new MemoryTransaction();
  }

  /** Fails as a query on a state schema that was never created does. */
  requireMigrated(): void {
    if (!this.migrated) throw new PgferryError("state", `the state schema ${quoteIdent(this.schema)} does not exist`);
  }

  /** The pipeline's row; fails as a write referencing a missing pipeline row does. */
  requirePipeline(pipeline: string): MemoryPipeline {
    const found = this.pipelines.get(pipeline);
    if (!found) throw new PgferryError("state", `pipeline ${pipeline} has no state row in ${quoteIdent(this.schema)}`);
    return found;
  }

  /** A write that commits with `tx`: recorded, then staged in a MemoryTransaction, or applied now for any other handle. */
  write(write: MemoryWrite, apply: () => void): void {
    this.writes.push(write);
    if (write.tx instanceof MemoryTransaction) write.tx.stage(apply);
    else apply();
  }

  /** A statement for the apply transaction whose effect on this state `execute` carries out. */
  statement(statement: Statement, apply: () => void): Statement {
    this.effects.set(statement, apply);
    return statement;
  }

  /** Runs a statement a memory store made inside `tx`, as the applier runs one on the target. */
  execute(tx: TransactionHandle, statement: Statement): void {
    const apply = this.effects.get(statement);
    if (!apply) throw new Error(`not a statement of this memory state: ${statement.name ?? statement.text}`);
    this.write({ kind: "statement", tx, statement }, apply);
  }
}


/** A promise of `work`'s result, rejected (not thrown) when it fails, as a query's is. */
export function settle<T>(work: () => T): Promise<T> {
  // The executor runs at once; what it throws rejects the promise.
  return new Promise<T>((resolve) => resolve(work()));
}
