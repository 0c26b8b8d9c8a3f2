/**
 * What the apply side receives: the plan's target changes (src/plan/changes.ts), plus SQL
 * statements that run in order with them (a resync's range deletes and progress).
 */
import type { TargetChange } from "../plan/changes.js";
import type { ConflictCount } from "./conflictGuard.js";

export type ApplyChange =
  | TargetChange
  /** A prepared statement that runs in order with the changes around it (resync range deletes and progress). */
  | { kind: "statement"; statement: Statement }
  /**
   * A source row that no edge of its table routes anywhere (a reverse split by constants whose
   * constants it does not carry, docs/reverse.md): a conflict to record, with nothing written.
   * `table` is the source table (plan.id); `key` its identity values as text, in `keyColumns` order.
   */
  | { kind: "unrouted"; table: string; keyColumns: readonly string[]; key: readonly (string | null)[]; at?: Date };

/** Statements that run in stream order (a resync chunk's range delete and progress); `onApplied` after their commit. */
export interface OrderedStatements {
  type: "statements";
  statements: Statement[];
  onApplied?: () => void;
}

/** A SQL statement with its parameters, ready for `client.query`. `name` makes it a prepared statement. */
export interface Statement {
  name?: string;
  text: string;
  values: unknown[];
  /** Rows this statement carries, for metrics. */
  rows: number;
  table: string;
  op: "insert" | "update" | "delete" | "truncate";
  /**
   * Every row must match a target row; the applier reports rows that did not. A guarded statement
   * says how many did in its one result row (`matched`): rows it left alone as conflicts the target's
   * side won were found all the same.
   */
  expectRows?: boolean;
  /**
   * Conflict-checked (statements.ts, guarded variants): the applier appends the opposite pipeline's
   * progress as the last three parameters ($floor, $commitTimes, $appliedAt), known only when the
   * statement runs.
   */
  guard?: true;
  /** Writes conflict records without being guarded (an unrouted change): the applier counts the transaction's conflicts all the same. */
  recordsConflicts?: true;
}

/** What a target COMMIT did: the conflicts it recorded, and, when it was asynchronous, where its WAL stands. */
export interface CommitResult {
  conflicts: ConflictCount[];
  /**
   * An asynchronous commit's position in the target's WAL: `commitEnd` is at or past its commit
   * record, `flushed` how far the WAL was flushed as it returned (both byte positions, as LSNs).
   * The commit is durable once the flush reaches `commitEnd`. Absent for a synchronous commit,
   * durable as it returns.
   */
  wal?: { commitEnd: bigint; flushed: bigint };
}
