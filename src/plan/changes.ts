/**
 * plan/ — the compiled mapping (plan.ts, mappingCompiler.ts, loadPlan.ts) and the row and change types both sides of it share; below everything but catalog/, config/ and sql/.
 *
 * The rows and changes on either side of the plan: a source row change as the stream reads it,
 * projected onto its plan's `sourceColumns`, and the target changes the mapping turns it into.
 * Values are PostgreSQL text (or null); `UNCHANGED` marks an unchanged TOAST column whose target
 * value must be left as it is (docs/design.md, rule 4). `old` and `new` here are a row before and after a
 * change, never a database: the plan itself only knows a source and a target.
 */
import { PgferryError } from "../errors.js";
import type { TablePlan } from "./plan.js";
import type { TargetTable } from "./targetTable.js";

export const UNCHANGED: unique symbol = Symbol("unchanged-toast");
/**
 * A value as PostgreSQL text, or (a binary stream's opaque column, plan.ts `opaqueInputs`) as the
 * source's binary send format, which only ever travels on to a target column of the identical type.
 */
export type Value = string | Buffer | null | typeof UNCHANGED;

/** A value pgferry reads (a key, an expression's or a hook's input): always text, as opaqueInputs keeps binary values away from them. */
export function readable<T>(value: string | Buffer | T, what: string): string | T {
  if (Buffer.isBuffer(value)) throw new PgferryError("internal", `${what} arrived as a binary value, which pgferry does not read`);
  return value;
}

/** A source tuple projected onto its plan's `sourceColumns`; UNCHANGED marks unchanged TOAST. */
export type SourceRow = Value[];

/** One source row change, before the mapping turns it into target changes. */
export interface SourceChange {
  type: "change";
  plan: TablePlan;
  op: "insert" | "update" | "delete";
  /** The old key ('K', other columns null) or the whole old row ('O', REPLICA IDENTITY FULL), when sent. */
  old: SourceRow | null;
  oldIsFullRow: boolean;
  new: SourceRow | null;
  /** A row re-read by a resync (applied as an update, counted as `resync`). */
  resync?: true;
  /** When its source transaction committed (the BEGIN message's timestamp), for conflict checks. */
  commitTime?: Date;
}

export interface SourceTruncate {
  type: "truncate";
  plans: TablePlan[];
}

/** The end of a source transaction: every change before it (since the previous commit) belongs to it. */
export interface SourceCommit {
  type: "commit";
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: Date;
  /** The same to the microsecond (PostgreSQL epoch), as pgoutput sends it: progress records it exactly. */
  commitMicros?: bigint;
}

/**
 * What a source change becomes on a target table (apply/ adds ordered SQL statements to these).
 * `at` on keyed changes: when the source change committed on the source (SourceChange.commitTime),
 * what a conflict check compares with the target row's own last write (apply/conflictGuard.ts).
 */
export type TargetChange =
  /**
   * Insert or update: the row as it must be after the change. UNCHANGED columns keep their target value.
   * `inserted`: the change puts the row on the target (a source insert, a row that entered the edge's
   * filter or route, a new key, a resync); otherwise it updates a row the target should already have,
   * and a conflict-checked apply does not bring back one the target deleted (apply/guardedStatements.ts).
   */
  | { kind: "upsert"; table: TargetTable; values: Value[]; at?: Date; inserted?: boolean }
  /** The row whose key is `key` (values of `keyIndexes`, in order) is gone. */
  | { kind: "delete"; table: TargetTable; key: (string | null)[]; at?: Date }
  /**
   * An update that moved a row to a new key while some columns are UNCHANGED: those values exist only
   * in the target row under the old key, so it is updated in place.
   */
  | { kind: "rekey"; table: TargetTable; oldKey: (string | null)[]; values: Value[]; at?: Date }
  /** Keyless table (REPLICA IDENTITY FULL, no key): rows are matched on all their old values. */
  | { kind: "insertRow"; table: TargetTable; values: Value[] }
  | { kind: "updateRow"; table: TargetTable; old: (string | Buffer | null)[]; values: Value[] }
  | { kind: "deleteRow"; table: TargetTable; old: (string | Buffer | null)[] }
  | { kind: "truncate"; tables: TargetTable[] }
  /** A TRUNCATE of one of several sources merged into `table`: only the rows carrying its discriminator go. */
  | { kind: "deleteOwned"; table: TargetTable; match: { column: string; type: string; value: string }[] };

/**
 * How far the target has applied the source: the last source transaction applied. It is written in
 * the same target transaction as the data it covers (docs/design.md, rule 2).
 */
export interface Checkpoint {
  /** LSN of the last applied source transaction's commit record: transactions at or before it are skipped. */
  commitLsn: bigint;
  /** Its end: what the source is told is flushed. */
  endLsn: bigint;
  commitTime: Date | null;
  /** commitTime to the microsecond (PostgreSQL epoch), when the stream gave it. */
  commitMicros?: bigint;
}
