/**
 * The conflict-checked (guarded) variants of the keyed statements of statements.ts, for a target that
 * takes writes of its own (apply/conflictGuard.ts): each judges and records conflicts with the target's
 * own writes in the statement that applies the batch, set-based. Also the record of changes routed
 * nowhere (`unrouted`, docs/reverse.md), which go to the same conflict log. Texts depend only on
 * (table, column set) and the guard's settings, so they are prepared once per connection.
 */
import { qualifiedName, quoteIdent } from "../sql/quote.js";
import type { TargetTable } from "../plan/targetTable.js";
import type { ConflictGuard } from "./conflictGuard.js";
import { keyMatch, prepared, unnestRows, updateSets, upsertText, type Cell } from "./statements.js";
import { COMMIT_ORDER_MARGIN_MS } from "./conflictGuard.js";
import type { Statement } from "./types.js";

/** The static part of a ConflictGuard: everything a guarded statement's text is built from. */
export type GuardSettings = Pick<ConflictGuard, "direction" | "resolution" | "stateSchema" | "pipeline">;

/** Rows of a guarded statement, each with its source commit time (undefined: unknown, judged as not having seen the target's write). */
export interface GuardedRows {
  rows: readonly (readonly Cell[])[];
  at: readonly (Date | undefined)[];
  /**
   * Upserts only: whether each row's changes insert it (TargetChange `inserted`). A row that is not,
   * and that the target does not have, was deleted there: it is not brought back. Absent: none is.
   */
  inserted?: readonly boolean[];
}

/**
 * Whether the incoming row wins a conflict, as SQL over `j` (j.at: its source commit, j.local_at:
 * the target row's). Last-writer-wins breaks a tie for the old project: the forward pipeline's
 * incoming rows come from it, the reverse pipeline's from the new one. A NULL `at` never wins by time.
 */
function incomingWins(guard: GuardSettings): string {
  const fromOld = guard.direction === "forward";
  switch (guard.resolution) {
    case "last-writer-wins":
      return fromOld ? "coalesce(j.at >= j.local_ms, false)" : "coalesce(j.at > j.local_ms, false)";
    case "prefer-old":
      return fromOld ? "true" : "false";
    case "prefer-new":
      return fromOld ? "false" : "true";
    case "stop":
      return "false";
  }
}

/**
 * The CTEs every guarded statement starts with, judging the whole batch in the statement that
 * applies it:
 * - `u`: the rows (c0, c1, ... as `carried` lists the table's columns) with their source commit time
 *   `at` (and, for upserts, `inserted`);
 * - `l`: the target rows with the batch's keys, locked, as they are now (not as the statement's
 *   snapshot has them): a row the target's application updated or deleted while the statement
 *   started is judged by that write, which the statement then writes over (or not) knowingly. Judged
 *   on the snapshot, a local write committed just after it was taken counted as none: the UPDATE
 *   went on to overwrite it (READ COMMITTED re-checks only the join), and an upsert re-inserted a
 *   row just deleted, neither recorded;
 * - `j`: each row beside the target row with its key: `local_at`, that row's last commit, and
 *   `conflict`: that commit is local (no replication origin: not pgferry's), after `floor` (before
 *   it the opposite pipeline did not exist) and not yet carried to the source when the incoming change
 *   committed there (the earliest `appliedAt` of a progress entry covering it is after `at`, or none).
 *   For upserts also `missing`, an update-delete conflict (PostgreSQL 18 calls it update_missing): the
 *   row is not on the target and the change does not insert it, so the target deleted it; while the
 *   opposite pipeline has no progress (floor 'infinity') nothing is judged, and it is inserted as
 *   without a guard. The target's side always keeps such a row (deleted); and the other way round, an
 *   incoming delete wins over a local update it did not see (recorded, kept 'incoming');
 * - `c`: one row in the state schema's `conflicts` per conflict: key columns and a fingerprint of
 *   the key (never values), both commit times, the resolution and what was kept.
 * The parameters: the rows' columns, `at` (and `inserted`), then pipeline, direction, table, key
 * columns, resolution; the applier appends $floor, $commitTimes and $appliedAt (Statement.guard),
 * known only at run time.
 */
function guardedSource(
  table: TargetTable,
  carried: readonly number[],
  input: GuardedRows,
  guard: GuardSettings,
  upsert: boolean,
  deletes?: "delete" | "replace",
): { with: string; values: unknown[]; wins: string } {
  const width = carried.length;
  const rows = input.rows.map((row, r) => [
    ...row.slice(0, width),
    input.at[r]?.toISOString() ?? null,
    ...(upsert ? [input.inserted?.[r] === true ? "t" : "f"] : []),
  ]);
  const source = unnestRows(rows, [...carried.map((i) => table.columns[i]), undefined, ...(upsert ? [undefined] : [])], "r");
  const values: unknown[] = [...source.values];
  const param = (value: unknown, type: string) => {
    values.push(value);
    return `$${values.length}::${type}`;
  };
  const keyColumns = table.keyIndexes.map((k) => table.columns[k]!);
  const record = [
    param(guard.pipeline, "text"),
    param(guard.direction, "text"),
    param(table.id, "text"),
    param(keyColumns.map((c) => c.name).join(", "), "text"),
  ];
  const resolution = param(guard.resolution, "text");
  const floor = `$${values.length + 1}::timestamptz`;
  const commitTimes = `$${values.length + 2}::timestamptz[]`;
  const appliedAt = `$${values.length + 3}::timestamptz[]`;
  const cells = Array.from({ length: width }, (_, i) => `c${i}`);
  // The key as PostgreSQL prints it, as in a constraint error's detail (ApplyError's fingerprint).
  const keyText = table.keyIndexes.map((k) => `(j.c${carried.indexOf(k)}::${table.columns[k]!.type})::text`).join(", ");
  // Commit times reach pgferry as JavaScript dates, to the millisecond (the incoming change's, the
  // progress entries'): the local write's is compared at the same precision, or a write would look
  // newer than itself. A tie within a millisecond goes to the old project (incomingWins).
  const localAt = "date_trunc('milliseconds', w.timestamp)";
  // Whether the opposite pipeline had applied the local write: a progress entry covers commits made
  // COMMIT_ORDER_MARGIN before its own, at full precision (conflictGuard.ts says why).
  const local =
    `w.roident = 0 AND w.timestamp IS NOT NULL AND ${localAt} > ${floor} ` +
    `AND coalesce((SELECT min(p.applied) FROM unnest(${commitTimes}, ${appliedAt}) AS p(ct, applied) ` +
    `WHERE p.ct >= w.timestamp + interval '${COMMIT_ORDER_MARGIN_MS} milliseconds') > u.at, true)`;
  // A key column of a row that is there is never NULL (it matched by equality).
  const missing = `t.${quoteIdent(keyColumns[0]!.name)} IS NULL AND NOT u.inserted AND ${floor} < 'infinity'::timestamptz`;
  const judged = upsert ? `${missing} AS missing, (${missing}) OR (${local}) AS conflict` : `${local} AS conflict`;
  // A delete wins over a concurrent update whatever the resolution (but stop): the deleting side keeps
  // no row to compare times with, and refuses the update there (missing), so both sides agree.
  // A delete that clears the way for the same key's insert (a row replaced in the batch) is an update
  // of the row: judged by time like one, and recorded only when it wins (it deleted); otherwise the
  // upsert that follows finds the row and records the conflict, once.
  const wins = upsert
    ? `(NOT j.missing AND ${incomingWins(guard)})`
    : deletes === "delete"
      ? guard.resolution === "stop"
        ? "false"
        : "true"
      : incomingWins(guard);
  const recorded = deletes === "replace" ? `j.conflict AND ${wins}` : "j.conflict";
  const kept = guard.resolution === "stop" ? "'stopped'" : `CASE WHEN ${wins} THEN 'incoming' ELSE 'local' END`;
  const conflicts = `${quoteIdent(guard.stateSchema)}.conflicts`;
  const text =
    `WITH u AS (SELECT ${cells.join(", ")}, date_trunc('milliseconds', c${width}::timestamptz) AS at${upsert ? `, c${width + 1}::boolean AS inserted` : ""} FROM ${source.from}), ` +
    `l AS (SELECT ${keyColumns.map((c) => `t.${quoteIdent(c.name)}`).join(", ")}, t.xmin AS pgferry_xmin FROM ${qualifiedName(table)} AS t ` +
    `JOIN u ON ${keyMatch(table, carried, "u")} FOR ${deletes !== undefined ? "UPDATE" : "NO KEY UPDATE"} OF t), ` +
    `j AS (SELECT u.*, w.timestamp AS local_at, ${localAt} AS local_ms, ${judged} ` +
    `FROM u LEFT JOIN l AS t ON ${keyMatch(table, carried, "u")} ` +
    `LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(t.pgferry_xmin) AS w ON true), ` +
    `c AS (INSERT INTO ${conflicts} (pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time, local_commit_time, resolution, kept) ` +
    `SELECT ${record.join(", ")}, left(encode(sha256(convert_to(concat_ws(', ', ${keyText}), 'UTF8')), 'hex'), 16), j.at, j.local_at, ${resolution}, ${kept} ` +
    `FROM j WHERE ${recorded})`;
  return { with: text, values, wins };
}

/**
 * upsertStatement, conflict-checked: rows whose conflict the target's side won are left as they are,
 * and a row the target does not have is inserted only by a change that inserts it (GuardedRows.inserted).
 */
export function guardedUpsertStatement(table: TargetTable, columnIndexes: readonly number[], input: GuardedRows, guard: GuardSettings): Statement {
  const source = guardedSource(table, columnIndexes, input, guard, true);
  const text = `${source.with} ${upsertText(table, columnIndexes, "j", "j", ` WHERE NOT j.conflict OR ${source.wins}`)}`;
  return prepared(text, source.values, { rows: input.rows.length, table: table.id, op: "insert", guard: true });
}

/**
 * updateRowsStatement, conflict-checked. It returns one row, `matched`: the rows found on the target,
 * whether written or left as the target's side won them, so the applier counts as missing exactly
 * what the plain UPDATE would (Statement.expectRows).
 */
export function guardedUpdateRowsStatement(table: TargetTable, columnIndexes: readonly number[], input: GuardedRows, guard: GuardSettings): Statement | null {
  const sets = updateSets(table, columnIndexes, "j");
  if (sets === null) return null;
  const source = guardedSource(table, columnIndexes, input, guard, false);
  const text =
    `${source.with}, written AS (UPDATE ${qualifiedName(table)} AS t SET ${sets} FROM j WHERE ${keyMatch(table, columnIndexes, "j")} ` +
    `AND (NOT j.conflict OR ${source.wins}) RETURNING 1) ` +
    `SELECT ((SELECT count(*) FROM written) + (SELECT count(*) FROM j WHERE j.conflict AND NOT ${source.wins}))::int AS matched`;
  return prepared(text, source.values, { rows: input.rows.length, table: table.id, op: "update", expectRows: true, guard: true });
}

/**
 * deleteStatement, conflict-checked: a row whose conflict the target's side won stays. `replacing`:
 * the keys are deleted for rows the batch then inserts again (a row replaced: deleted and inserted,
 * or leaving and re-entering an edge's filter), which is an update of the row, judged like one.
 */
export function guardedDeleteStatement(table: TargetTable, keys: GuardedRows, guard: GuardSettings, replacing = false): Statement {
  const source = guardedSource(table, table.keyIndexes, keys, guard, false, replacing ? "replace" : "delete");
  const text =
    `${source.with} DELETE FROM ${qualifiedName(table)} AS t USING j WHERE ${keyMatch(table, table.keyIndexes, "j")} ` +
    `AND (NOT j.conflict OR ${source.wins})`;
  return prepared(text, source.values, { rows: keys.rows.length, table: table.id, op: "delete", guard: true });
}

/** A change no edge routes (ApplyChange `unrouted`): its source table, identity columns and values, commit time. */
export interface UnroutedRecord {
  table: string;
  keyColumns: readonly string[];
  key: readonly (string | null)[];
  at: Date | undefined;
}

/**
 * Records unrouted changes in the conflict log, one row each, with the key fingerprint the guarded
 * statements compute (the values as PostgreSQL prints them, joined by ', ' without NULLs, as
 * concat_ws does). Nothing was written for them, so the target's side is what is kept, whatever the
 * resolution; there is no target row, so no local commit time. `recordsConflicts` has the applier
 * count them with the transaction's other conflicts.
 */
export function unroutedStatement(records: readonly UnroutedRecord[], guard: GuardSettings): Statement {
  const conflicts = `${quoteIdent(guard.stateSchema)}.conflicts`;
  const text =
    `INSERT INTO ${conflicts} (pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time, local_commit_time, resolution, kept) ` +
    `SELECT $1::text, $2::text, r.table_name, r.key_columns, left(encode(sha256(convert_to(r.key, 'UTF8')), 'hex'), 16), r.at, NULL, $3::text, 'local' ` +
    `FROM unnest($4::text[], $5::text[], $6::text[], $7::timestamptz[]) AS r(table_name, key_columns, key, at)`;
  const values = [
    guard.pipeline,
    guard.direction,
    guard.resolution,
    records.map((r) => r.table),
    records.map((r) => r.keyColumns.join(", ")),
    records.map((r) => r.key.filter((v) => v !== null).join(", ")),
    records.map((r) => r.at?.toISOString() ?? null),
  ];
  return prepared(text, values, { rows: records.length, table: `${guard.stateSchema}.conflicts`, op: "insert", recordsConflicts: true });
}
