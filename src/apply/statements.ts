/**
 * Set-based SQL for the apply side. Every statement carries its rows as one text parameter per
 * column (`unnest(string_to_array($1, ...), ...)`, see unnestRows), cast to the target column's type inside PostgreSQL, so
 * values never pass through a lossy JavaScript type (docs/design.md, rule 3) and one statement applies a
 * whole group of rows. Statement texts depend only on (table, column set), so they are prepared once
 * per connection and reused. The guarded variants of the keyed statements (at the end) also judge
 * and record conflicts with the target's own writes, in the same statement (conflictGuard.ts).
 */
import { createHash } from "node:crypto";
import { qualifiedName, quoteIdent } from "../sql/quote.js";
import type { TargetColumn, TargetTable } from "../plan/targetTable.js";
import type { ConflictGuard } from "./conflictGuard.js";
import type { Statement } from "./types.js";

export type Cell = string | null;

/**
 * The type a written value is cast to: the column's type without its modifier (`character
 * varying`, not `character varying(5)`). An explicit cast to `varchar(5)`, `char(5)` or `bit(8)`
 * cuts or pads a value that does not fit without a word; the assignment to the column then checks
 * the modifier as COPY does, so a value too long is an error on the stream as on the snapshot.
 */
function writeCast(column: TargetColumn): string {
  return column.castType ?? column.type;
}

/** A stable prepared-statement name for a statement text (names are per connection, texts bounded). */
function statementName(text: string): string {
  return `pgferry_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`;
}

function prepared(text: string, values: unknown[], meta: Pick<Statement, "rows" | "table" | "op" | "expectRows" | "guard">): Statement {
  return { name: statementName(text), text, values, ...meta };
}

/** Separates one column's values inside its parameter (a control character, rare in data). */
const FIELD_SEPARATOR = "\x1f";
/** Stands for NULL among them. */
const NULL_FIELD = "\x1e";

/**
 * `unnest(...) AS alias(c0, c1, ...)` over `rows` (each a list of `width` cells), with one parameter
 * per column ($1, $2, ...): the column's values joined by FIELD_SEPARATOR and split on the
 * target by `string_to_array`, which reads a large value (the 15 kB text of a 1536-d vector) about
 * three times faster than the text[] input parser. A statement where some value holds the separator
 * or is the NULL mark, or a column would be a lone empty string (which `string_to_array` reads as no
 * element), sends text[] arrays instead. The two forms have different texts, each prepared once.
 */
function unnestRows(rows: readonly (readonly Cell[])[], width: number, alias: string): { from: string; values: unknown[] } {
  const columns: Cell[][] = Array.from({ length: width }, () => new Array<Cell>(rows.length));
  let delimited = true;
  rows.forEach((row, r) => {
    for (let c = 0; c < width; c += 1) {
      const cell = row[c] ?? null;
      columns[c]![r] = cell;
      if (cell !== null && delimited && (cell.includes(FIELD_SEPARATOR) || cell === NULL_FIELD || (rows.length === 1 && cell === ""))) delimited = false;
    }
  });
  const names = Array.from({ length: width }, (_, i) => `c${i}`).join(", ");
  const params = Array.from({ length: width }, (_, i) => (delimited ? `string_to_array($${i + 1}::text, E'\\x1f', E'\\x1e')` : `$${i + 1}::text[]`)).join(", ");
  return {
    from: `unnest(${params}) AS ${alias}(${names})`,
    values: delimited ? columns.map((column) => column.map((cell) => cell ?? NULL_FIELD).join(FIELD_SEPARATOR)) : columns,
  };
}

/**
 * Every INSERT carries the source's values, also into a GENERATED ALWAYS identity column, which
 * PostgreSQL accepts only with this clause (and ignores on tables without one). COPY needs nothing.
 */
const OVERRIDING = "OVERRIDING SYSTEM VALUE";

/**
 * INSERT ... ON CONFLICT (key) DO UPDATE for rows that all carry the same columns (`columnIndexes`
 * into `table.columns`; unchanged-TOAST columns are simply not in the set, so they keep their value).
 */
export function upsertStatement(table: TargetTable, columnIndexes: readonly number[], rows: readonly (readonly Cell[])[]): Statement {
  const source = unnestRows(rows, columnIndexes.length, "u");
  const text = upsertText(table, columnIndexes, source.from, "u", "");
  return prepared(text, source.values, { rows: rows.length, table: table.id, op: "insert" });
}

/** INSERT ... SELECT from `from` (rows aliased `alias`, filtered by `where`) ... ON CONFLICT: one text for the plain and the guarded upsert. */
function upsertText(table: TargetTable, columnIndexes: readonly number[], from: string, alias: string, where: string): string {
  const columns = columnIndexes.map((i) => table.columns[i]!);
  const names = columns.map((c) => quoteIdent(c.name));
  const casts = columns.map((c, i) => `${alias}.c${i}::${writeCast(c)}`);
  const keyNames = table.keyIndexes.map((i) => quoteIdent(table.columns[i]!.name));
  const updates = columnIndexes
    .filter((i) => !table.keyIndexes.includes(i))
    .map((i) => `${quoteIdent(table.columns[i]!.name)} = EXCLUDED.${quoteIdent(table.columns[i]!.name)}`);
  const onConflict = updates.length > 0 ? `DO UPDATE SET ${updates.join(", ")}` : "DO NOTHING";
  return (
    `INSERT INTO ${qualifiedName(table)} (${names.join(", ")}) ${OVERRIDING} SELECT ${casts.join(", ")} FROM ${from}${where} ` +
    `ON CONFLICT (${keyNames.join(", ")}) ${onConflict}`
  );
}

/**
 * UPDATE of rows that left some columns out as unchanged TOAST (`columnIndexes`: the columns they
 * carry, key included). Not an upsert: PostgreSQL checks NOT NULL on the insert half of
 * INSERT ... ON CONFLICT before it finds the conflict, so a NOT NULL TOASTed column would fail. A row
 * that is not on the target is not written; `expectRows` lets the applier report it.
 */
export function updateRowsStatement(table: TargetTable, columnIndexes: readonly number[], rows: readonly (readonly Cell[])[]): Statement | null {
  const sets = updateSets(table, columnIndexes, "u");
  if (sets === null) return null;
  const source = unnestRows(rows, columnIndexes.length, "u");
  const text = `UPDATE ${qualifiedName(table)} AS t SET ${sets} FROM ${source.from} WHERE ${keyMatch(table, columnIndexes, "u")}`;
  return prepared(text, source.values, { rows: rows.length, table: table.id, op: "update", expectRows: true });
}

/** `col = alias.cN::type, ...` for the non-key columns carried (`columnIndexes`); null when there are none. */
function updateSets(table: TargetTable, columnIndexes: readonly number[], alias: string): string | null {
  const sets = columnIndexes.flatMap((col, i) =>
    table.keyIndexes.includes(col) ? [] : [`${quoteIdent(table.columns[col]!.name)} = ${alias}.c${i}::${writeCast(table.columns[col]!)}`],
  );
  return sets.length === 0 ? null : sets.join(", ");
}

/** Key columns of `table` (`t`) compared with the rows aliased `alias`, which carry `columnIndexes` (`t.k = u.c0::type AND ...`). */
function keyMatch(table: TargetTable, columnIndexes: readonly number[], alias: string): string {
  return table.keyIndexes
    .map((key) => `t.${quoteIdent(table.columns[key]!.name)} = ${alias}.c${columnIndexes.indexOf(key)}::${table.columns[key]!.type}`)
    .join(" AND ");
}

/** DELETE of every row whose key is in `keys` (each key: the values of `table.keyIndexes`, in order). */
export function deleteStatement(table: TargetTable, keys: readonly (readonly Cell[])[]): Statement {
  const source = unnestRows(keys, table.keyIndexes.length, "d");
  const text = `DELETE FROM ${qualifiedName(table)} AS t USING ${source.from} WHERE ${keyMatch(table, table.keyIndexes, "d")}`;
  return prepared(text, source.values, { rows: keys.length, table: table.id, op: "delete" });
}

// ---- guarded statements (conflict detection, apply/conflictGuard.ts) ----

/** The static part of a ConflictGuard: everything a guarded statement's text is built from. */
export type GuardSettings = Pick<ConflictGuard, "direction" | "resolution" | "stateSchema" | "pipeline">;

/** Rows of a guarded statement, each with its source commit time (undefined: unknown, judged as not having seen the target's write). */
export interface GuardedRows {
  rows: readonly (readonly Cell[])[];
  at: readonly (Date | undefined)[];
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
      return fromOld ? "coalesce(j.at >= j.local_at, false)" : "coalesce(j.at > j.local_at, false)";
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
 * - `u`: the rows (c0, c1, ... as `carried` lists the table's columns) with their source commit time `at`;
 * - `j`: each row beside the target row with its key: `local_at`, that row's last commit, and
 *   `conflict`: that commit is local (no replication origin: not pgferry's), after `floor` (before
 *   it the opposite pipeline did not exist) and not yet carried to the source when the incoming change
 *   committed there (the earliest `appliedAt` of a progress entry covering it is after `at`, or none);
 * - `c`: one row in the state schema's `conflicts` per conflict: key columns and a fingerprint of
 *   the key (never values), both commit times, the resolution and what was kept.
 * The parameters: the rows' columns, `at`, then pipeline, direction, table, key columns, resolution;
 * the applier appends $floor, $commitTimes and $appliedAt (Statement.guard), known only at run time.
 */
function guardedSource(table: TargetTable, carried: readonly number[], input: GuardedRows, guard: GuardSettings): { with: string; values: unknown[]; wins: string } {
  const width = carried.length;
  const rows = input.rows.map((row, r) => [...row.slice(0, width), input.at[r]?.toISOString() ?? null]);
  const source = unnestRows(rows, width + 1, "r");
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
  const wins = incomingWins(guard);
  const kept = guard.resolution === "stop" ? "'stopped'" : `CASE WHEN ${wins} THEN 'incoming' ELSE 'local' END`;
  const conflicts = `${quoteIdent(guard.stateSchema)}.conflicts`;
  const text =
    `WITH u AS (SELECT ${cells.join(", ")}, c${width}::timestamptz AS at FROM ${source.from}), ` +
    `j AS (SELECT u.*, w.timestamp AS local_at, w.roident = 0 AND w.timestamp IS NOT NULL AND w.timestamp > ${floor} ` +
    `AND coalesce((SELECT min(p.applied) FROM unnest(${commitTimes}, ${appliedAt}) AS p(ct, applied) WHERE p.ct >= w.timestamp) > u.at, true) AS conflict ` +
    `FROM u LEFT JOIN ${qualifiedName(table)} AS t ON ${keyMatch(table, carried, "u")} ` +
    `LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(t.xmin) AS w ON true), ` +
    `c AS (INSERT INTO ${conflicts} (pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time, local_commit_time, resolution, kept) ` +
    `SELECT ${record.join(", ")}, left(encode(sha256(convert_to(concat_ws(', ', ${keyText}), 'UTF8')), 'hex'), 16), j.at, j.local_at, ${resolution}, ${kept} ` +
    `FROM j WHERE j.conflict)`;
  return { with: text, values, wins };
}

/** upsertStatement, conflict-checked: rows whose conflict the target's side won are left as they are. */
export function guardedUpsertStatement(table: TargetTable, columnIndexes: readonly number[], input: GuardedRows, guard: GuardSettings): Statement {
  const source = guardedSource(table, columnIndexes, input, guard);
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
  const source = guardedSource(table, columnIndexes, input, guard);
  const text =
    `${source.with}, written AS (UPDATE ${qualifiedName(table)} AS t SET ${sets} FROM j WHERE ${keyMatch(table, columnIndexes, "j")} ` +
    `AND (NOT j.conflict OR ${source.wins}) RETURNING 1) ` +
    `SELECT ((SELECT count(*) FROM written) + (SELECT count(*) FROM j WHERE j.conflict AND NOT ${source.wins}))::int AS matched`;
  return prepared(text, source.values, { rows: input.rows.length, table: table.id, op: "update", expectRows: true, guard: true });
}

/** deleteStatement, conflict-checked: a row whose conflict the target's side won stays. */
export function guardedDeleteStatement(table: TargetTable, keys: GuardedRows, guard: GuardSettings): Statement {
  const source = guardedSource(table, table.keyIndexes, keys, guard);
  const text =
    `${source.with} DELETE FROM ${qualifiedName(table)} AS t USING j WHERE ${keyMatch(table, table.keyIndexes, "j")} ` +
    `AND (NOT j.conflict OR ${source.wins})`;
  return prepared(text, source.values, { rows: keys.rows.length, table: table.id, op: "delete", guard: true });
}

/**
 * An update that moved a row to a new key while some columns were unchanged TOAST: only the target
 * row under the old key has those values, so it is updated in place (`columnIndexes`: what changed).
 */
export function rekeyStatement(table: TargetTable, oldKey: readonly Cell[], columnIndexes: readonly number[], values: readonly Cell[]): Statement {
  const sets = columnIndexes.map((col, i) => `${quoteIdent(table.columns[col]!.name)} = $${i + 1}::${writeCast(table.columns[col]!)}`);
  const where = table.keyIndexes.map(
    (col, i) => `${quoteIdent(table.columns[col]!.name)} = $${columnIndexes.length + i + 1}::${table.columns[col]!.type}`,
  );
  const text = `UPDATE ${qualifiedName(table)} SET ${sets.join(", ")} WHERE ${where.join(" AND ")}`;
  return prepared(text, [...values, ...oldKey], { rows: 1, table: table.id, op: "update" });
}

/** Plain INSERT of rows into a table without a key (REPLICA IDENTITY FULL). */
export function insertRowsStatement(table: TargetTable, rows: readonly (readonly Cell[])[]): Statement {
  const names = table.columns.map((c) => quoteIdent(c.name));
  const casts = table.columns.map((c, i) => `u.c${i}::${writeCast(c)}`);
  const source = unnestRows(rows, names.length, "u");
  const text = `INSERT INTO ${qualifiedName(table)} (${names.join(", ")}) ${OVERRIDING} SELECT ${casts.join(", ")} FROM ${source.from}`;
  return prepared(text, source.values, { rows: rows.length, table: table.id, op: "insert" });
}

/**
 * One row of a keyless table, found by all its old values. Compared as text (json and some other
 * types have no equality operator), after a round trip through the column type so formatting
 * matches. Only one row is touched even when duplicates exist, as native replication does.
 */
function matchOneRow(table: TargetTable, first: number): string {
  const conditions = table.columns.map(
    (c, i) => `t.${quoteIdent(c.name)}::text IS NOT DISTINCT FROM ($${first + i}::${c.type})::text`,
  );
  return `ctid = (SELECT t.ctid FROM ${qualifiedName(table)} AS t WHERE ${conditions.join(" AND ")} LIMIT 1)`;
}

export function updateRowStatement(table: TargetTable, old: readonly Cell[], columnIndexes: readonly number[], values: readonly Cell[]): Statement {
  const sets = columnIndexes.map((col, i) => `${quoteIdent(table.columns[col]!.name)} = $${i + 1}::${writeCast(table.columns[col]!)}`);
  const text = `UPDATE ${qualifiedName(table)} SET ${sets.join(", ")} WHERE ${matchOneRow(table, columnIndexes.length + 1)}`;
  return prepared(text, [...values, ...old], { rows: 1, table: table.id, op: "update" });
}

export function deleteRowStatement(table: TargetTable, old: readonly Cell[]): Statement {
  const text = `DELETE FROM ${qualifiedName(table)} WHERE ${matchOneRow(table, 1)}`;
  return prepared(text, [...old], { rows: 1, table: table.id, op: "delete" });
}

export function truncateStatement(tables: readonly TargetTable[]): Statement {
  const unique = [...new Map(tables.map((t) => [t.id, t])).values()];
  // Not prepared: TRUNCATE is rare, and its text varies with the set of tables.
  return { text: `TRUNCATE ${unique.map(qualifiedName).join(", ")}`, values: [], rows: 0, table: unique.map((t) => t.id).join(","), op: "truncate" };
}

/** Deletes the rows of one merged source (its discriminator columns), for a TRUNCATE or a re-copy of that source. */
export function deleteOwnedStatement(table: TargetTable, match: readonly { column: string; type: string; value: string }[]): Statement {
  const where = match.map((m, i) => `${quoteIdent(m.column)} = $${i + 1}::${m.type}`).join(" AND ");
  return prepared(`DELETE FROM ${qualifiedName(table)} WHERE ${where}`, match.map((m) => m.value), { rows: 0, table: table.id, op: "truncate" });
}

/**
 * A resync chunk's repair of rows the source no longer has: the target rows whose key lies in the
 * chunk's key range (lower bound exclusive, upper inclusive; null = unbounded), minus the keys the
 * chunk and the stream wrote, go. Only for targets keyed by the source key itself (an ordered range).
 */
export function rangeDeleteStatement(
  table: TargetTable,
  range: { lo: readonly Cell[] | null; hi: readonly Cell[] | null },
  keep: readonly (readonly Cell[])[],
  ownership: readonly { column: string; type: string; value: string }[] | null,
): Statement {
  const keyColumns = table.keyIndexes.map((i) => table.columns[i]!);
  const tuple = `(${keyColumns.map((c) => `t.${quoteIdent(c.name)}`).join(", ")})`;
  const values: unknown[] = [];
  const param = (value: unknown, type: string) => {
    values.push(value);
    return `$${values.length}::${type}`;
  };
  const where: string[] = [];
  for (const o of ownership ?? []) where.push(`t.${quoteIdent(o.column)} = ${param(o.value, o.type)}`);
  if (range.lo) where.push(`${tuple} > (${keyColumns.map((c, i) => param(range.lo![i], c.type)).join(", ")})`);
  if (range.hi) where.push(`${tuple} <= (${keyColumns.map((c, i) => param(range.hi![i], c.type)).join(", ")})`);
  const arrays = keyColumns.map((_, i) => param(keep.map((k) => k[i] ?? null), "text[]"));
  const match = keyColumns.map((c, i) => `t.${quoteIdent(c.name)} = k.c${i}::${c.type}`).join(" AND ");
  where.push(`NOT EXISTS (SELECT 1 FROM unnest(${arrays.join(", ")}) AS k(${keyColumns.map((_, i) => `c${i}`).join(", ")}) WHERE ${match})`);
  return prepared(`DELETE FROM ${qualifiedName(table)} AS t WHERE ${where.join(" AND ")}`, values, { rows: 0, table: table.id, op: "delete" });
}
