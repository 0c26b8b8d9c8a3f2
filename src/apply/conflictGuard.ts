/**
 * Conflict detection for a pipeline whose destination also takes writes of its own (both directions
 * running, docs/reverse.md). The model, decided once for both directions:
 *
 * - A destination row is *local* when its last writer (pg_xact_commit_timestamp_origin(xmin)) is a
 *   transaction without a replication origin: the application's, not pgferry's (every pgferry apply
 *   session is tagged with its pipeline's origin). A row written before `floor` (the opposite
 *   pipeline's start: copies and history) is never local.
 * - The incoming change C committed on its source at `at`. The local write W committed on the
 *   destination at `local_at`. C saw W when the opposite pipeline had applied W to C's side before C
 *   committed: applied(W) = the earliest `appliedAt` of the opposite pipeline's progress entries with
 *   `commitTime >= local_at`. C and W *conflict* when W is local and C did not see it
 *   (applied(W) unknown or later than `at`).
 * - Progress is in commit times, and commit times do not quite follow the WAL: a backend takes its
 *   commit timestamp, then writes its commit record, so two transactions committing together can
 *   reach the WAL (and the opposite pipeline) in the other order, and a pgferry apply commit is
 *   always close to some application commit. A progress entry of commit time `ct` therefore vouches
 *   only for commits made COMMIT_ORDER_MARGIN_MS before `ct` (a write made just before an entry
 *   that was applied later was otherwise taken as seen, no conflict was judged, and each side kept
 *   the other's row). The cost: a change made on the other side within that margin after the write
 *   was carried there is judged a conflict although it saw the write (last-writer-wins keeps it all
 *   the same: it is the later one).
 * - A conflict is resolved by `resolution`: last-writer-wins (by commit time; a tie goes to the old
 *   project), prefer-old, prefer-new, or stop (nothing of the batch commits; the pipeline stops).
 *   Every conflict is recorded in the destination's state schema (`conflicts`): table, key columns,
 *   key fingerprint (never values), both commit times, resolution and what was kept.
 *
 * Checks are set-based: the guarded statements (statements.ts) judge a whole batch of keys in the
 * statement that applies them; no per-row round trips.
 */
import type { ConflictResolution } from "../config/index.js";

/** How far commit timestamps may stand out of WAL order (see the model above): a backend descheduled between the two. */
export const COMMIT_ORDER_MARGIN_MS = 250;

export type Direction = "forward" | "reverse";

/** The opposite pipeline's progress, as read from this pipeline's source (where the opposite writes). */
export interface OppositeProgress {
  /** Destination rows last written before this are not local (the opposite pipeline did not exist yet). Null: the opposite pipeline has no state, so nothing is guarded. */
  floor: Date | null;
  /** Ascending pairs: the opposite pipeline had applied every destination commit up to `commitTimes[i]` (exact: UTC ISO text to the microsecond) at `appliedAt[i]`. */
  commitTimes: string[];
  appliedAt: Date[];
}

export interface ConflictGuard {
  direction: Direction;
  resolution: ConflictResolution;
  /** Where conflicts are recorded: this pipeline's state schema on its destination, and its name there. */
  stateSchema: string;
  pipeline: string;
  /** The opposite pipeline's progress, fresh enough for the batch about to be applied (read once per batch at most). */
  progress(): Promise<OppositeProgress>;
}

/** Conflicts one applied batch met, per table and outcome (for metrics and the status page). */
export interface ConflictCount {
  table: string;
  resolution: ConflictResolution;
  kept: "incoming" | "local";
  count: number;
}
