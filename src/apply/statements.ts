/**
 * Set-based SQL for the apply side. Every statement carries its rows as one text parameter per
 * column (`unnest(string_to_array($1, ...), ...)`, see unnestRows), cast to the target column's type inside PostgreSQL, so
 * values never pass through a lossy JavaScript type (docs/design.md, rule 3) and one statement applies a
 * whole group of rows. Statement texts depend only on (table, column set), so they are prepared once
 * per connection and reused. The guarded variants of the keyed statements (guardedStatements.ts)
 * build on the helpers exported here.
 */
import { createHash } from "node:crypto";
import { PgferryError } from "../errors.js";
import { qualifiedName, quoteIdent } from "../sql/quote.js";
import type { TargetColumn, TargetTable } from "../plan/targetTable.js";
import type { Statement } from "./types.js";


export type Cell = string | Buffer | null;

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

export function prepared(text: string, values: unknown[], meta: Pick<Statement, "rows" | "table" | "op" | "expectRows" | "guard" | "recordsConflicts">): Statement {
  return { name: statementName(text), text, values, ...meta };
}

/** Separates one column's values inside its parameter (a control character, rare in data). */
const FIELD_SEPARATOR = "\x1f";
/** Stands for NULL among them. */
const NULL_FIELD = "\x1e";

/**
 * `unnest(...) AS alias(c0, c1, ...)` over `rows` (each a list of `columns.length` cells), with one
 * parameter per column ($1, $2, ...): the column's values joined by FIELD_SEPARATOR and split on the
 * target by `string_to_array`, which reads a large value (the 15 kB text of a 1536-d vector) about
 * three times faster than the text[] input parser. A statement where some value holds the separator
 * or is the NULL mark, or a column would be a lone empty string (which `string_to_array` reads as no
 * element), sends text[] arrays instead. The two forms have different texts, each prepared once.
 *
 * A column of binary values (a binary stream's opaque column: `columns[c]` is the target column they
 * are written to, of the type they were sent in) goes as one binary array of that type, read by the
 * type's receive function: no text at either end. A column holds one kind or the other, never both
 * (ChangeBuffer groups rows by it).
 */
export function unnestRows(rows: readonly (readonly Cell[])[], columns: readonly (TargetColumn | undefined)[], alias: string): { from: string; values: unknown[] } {
  const width = columns.length;
  const cellsOf: Cell[][] = Array.from({ length: width }, () => new Array<Cell>(rows.length));
  const binary = new Array<boolean>(width).fill(false);
  const text = new Array<boolean>(width).fill(false);
  let delimited = true;
  rows.forEach((row, r) => {
    for (let c = 0; c < width; c += 1) {
      const cell = row[c] ?? null;
      cellsOf[c]![r] = cell;
      if (cell === null) continue;
      if (typeof cell !== "string") {
        binary[c] = true;
        continue;
      }
      text[c] = true;
      if (delimited && (cell.includes(FIELD_SEPARATOR) || cell === NULL_FIELD || (rows.length === 1 && cell === ""))) delimited = false;
    }
  });
  const names = Array.from({ length: width }, (_, i) => `c${i}`).join(", ");
  const params: string[] = [];
  const values: unknown[] = [];
  cellsOf.forEach((cells, c) => {
    const n = c + 1;
    if (binary[c]) {
      const column = columns[c];
      if (text[c] || column?.typeOid === undefined) {
        throw new PgferryError("internal", `binary values for ${column ? `column ${column.name}` : `parameter ${n}`} ${text[c] ? "mixed with text" : "without a target type"}`);
      }
      params.push(`$${n}::${writeCast(column)}[]`);
      values.push(binaryArray(cells as (Buffer | null)[], column.typeOid));
    } else if (delimited) {
      params.push(`string_to_array($${n}::text, E'\\x1f', E'\\x1e')`);
      values.push(cells.map((cell) => cell ?? NULL_FIELD).join(FIELD_SEPARATOR));
    } else {
      params.push(`$${n}::text[]`);
      values.push(cells);
    }
  });
  return { from: `unnest(${params.join(", ")}) AS ${alias}(${names})`, values };
}

/**
 * A one-dimensional array in PostgreSQL's binary format (array_recv): dimensions, a has-nulls flag,
 * the element type's OID, then each element's length (-1: NULL) and bytes.
 */
export function binaryArray(elements: readonly (Buffer | null)[], elementTypeOid: number): Buffer {
  let size = 20;
  let nulls = 0;
  for (const e of elements) {
    size += 4 + (e?.length ?? 0);
    if (e === null) nulls += 1;
  }
  const out = Buffer.allocUnsafe(size);
  out.writeInt32BE(1, 0);
  out.writeInt32BE(nulls > 0 ? 1 : 0, 4);
  out.writeUInt32BE(elementTypeOid, 8);
  out.writeInt32BE(elements.length, 12);
  out.writeInt32BE(1, 16);
  let at = 20;
  for (const e of elements) {
    if (e === null) {
      at = out.writeInt32BE(-1, at);
      continue;
    }
    at = out.writeInt32BE(e.length, at);
    at += e.copy(out, at);
  }
  return out;
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
  const source = unnestRows(rows, columnIndexes.map((i) => table.columns[i]), "u");
  const text = upsertText(table, columnIndexes, source.from, "u", "");
  return prepared(text, source.values, { rows: rows.length, table: table.id, op: "insert" });
}

/** INSERT ... SELECT from `from` (rows aliased `alias`, filtered by `where`) ... ON CONFLICT: one text for the plain and the guarded upsert. */
export function upsertText(table: TargetTable, columnIndexes: readonly number[], from: string, alias: string, where: string): string {
  const columns = columnIndexes.map((i) => table.columns[i]!);
  const names = columns.map((c) => quoteIdent(c.name));
  const casts = columns.map((c, i) => `${alias}.c${i}::${writeCast(c)}`);
  const keyNames = table.keyIndexes.map((i) => quoteIdent(table.columns[i]!.name));
  const updates = columnIndexes
    .filter((i) => !table.keyIndexes.includes(i) && !table.insertOnly?.includes(i))
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
  const source = unnestRows(rows, columnIndexes.map((i) => table.columns[i]), "u");
  const text = `UPDATE ${qualifiedName(table)} AS t SET ${sets} FROM ${source.from} WHERE ${keyMatch(table, columnIndexes, "u")}`;
  return prepared(text, source.values, { rows: rows.length, table: table.id, op: "update", expectRows: true });
}

/** `col = alias.cN::type, ...` for the non-key columns carried (`columnIndexes`); null when there are none. */
export function updateSets(table: TargetTable, columnIndexes: readonly number[], alias: string): string | null {
  const sets = columnIndexes.flatMap((col, i) =>
    table.keyIndexes.includes(col) || table.insertOnly?.includes(col) ? [] : [`${quoteIdent(table.columns[col]!.name)} = ${alias}.c${i}::${writeCast(table.columns[col]!)}`],
  );
  return sets.length === 0 ? null : sets.join(", ");
}

/** Key columns of `table` (`t`) compared with the rows aliased `alias`, which carry `columnIndexes` (`t.k = u.c0::type AND ...`). */
export function keyMatch(table: TargetTable, columnIndexes: readonly number[], alias: string): string {
  return table.keyIndexes
    .map((key) => `t.${quoteIdent(table.columns[key]!.name)} = ${alias}.c${columnIndexes.indexOf(key)}::${table.columns[key]!.type}`)
    .join(" AND ");
}

/** DELETE of every row whose key is in `keys` (each key: the values of `table.keyIndexes`, in order). */
export function deleteStatement(table: TargetTable, keys: readonly (readonly Cell[])[]): Statement {
  const source = unnestRows(keys, table.keyIndexes.map((i) => table.columns[i]), "d");
  const text = `DELETE FROM ${qualifiedName(table)} AS t USING ${source.from} WHERE ${keyMatch(table, table.keyIndexes, "d")}`;
  return prepared(text, source.values, { rows: keys.length, table: table.id, op: "delete" });
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
  const source = unnestRows(rows, table.columns, "u");
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
