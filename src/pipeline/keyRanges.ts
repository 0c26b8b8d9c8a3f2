/**
 * Keys drawn from sequences while both sides insert (docs/reverse.md, "Inserts on both sides"). The
 * old project keeps its sequences; the new project's sequences that feed an old key (serial and
 * identity keys of moved tables, and the sequence behind a column a derived key is kept in, such as a
 * legacy id with `DEFAULT nextval(...)`) are moved into the upper half of the old key type's range,
 * at or above KEY_RANGE_START, so a row inserted on either side never takes a key the other side has
 * used or will use. pgferry moves them once, when the reverse pipeline starts (never backwards), and preflight
 * refuses to start the reverse when an old-side key sequence has already reached that range.
 * uuid keys and keys derived by SQL need nothing.
 */
import type pg from "pg";
import type { Logger } from "pino";
import type { TablePlan } from "../plan/plan.js";

/** Where the new side's keys start, per integer type: half of the type's positive range. */
export const KEY_RANGE_START: Readonly<Record<string, bigint>> = {
  smallint: 16_384n,
  integer: 1_073_741_824n,
  bigint: 4_611_686_018_427_387_904n,
};

export interface KeySequence {
  table: string;
  column: string;
  sequence: string;
  /** The next value nextval() would return. */
  next: bigint;
  start: bigint;
}

/** The sequences behind `columns` of `table` (serial or identity), with their next value. */
async function keySequences(pool: pg.Pool, columns: readonly { table: string; column: string }[]): Promise<KeySequence[]> {
  if (columns.length === 0) return [];
  const { rows } = await pool.query<{ table: string; column: string; sequence: string; type: string; increment: string }>(
    `SELECT k.tbl AS table, k.col AS column, s.seq AS sequence, format_type(a.atttypid, NULL) AS type, q.seqincrement::text AS increment
     FROM unnest($1::text[], $2::text[]) AS k(tbl, col)
     CROSS JOIN LATERAL pg_get_serial_sequence(k.tbl, k.col) AS s(seq)
     JOIN pg_attribute a ON a.attrelid = k.tbl::regclass AND a.attname = k.col
     JOIN pg_sequence q ON q.seqrelid = s.seq::regclass
     WHERE s.seq IS NOT NULL`,
    [columns.map((c) => c.table), columns.map((c) => c.column)],
  );
  const found: KeySequence[] = [];
  for (const r of rows) {
    // Read from the sequence itself: pg_sequences shows no value after setval(..., false) (a sync's).
    // The name comes from pg_get_serial_sequence, quoted as needed.
    const state = await pool.query<{ last_value: string; is_called: boolean }>(`SELECT last_value::text, is_called FROM ${r.sequence}`);
    const last = BigInt(state.rows[0]!.last_value);
    const next = state.rows[0]!.is_called ? last + BigInt(r.increment) : last;
    // A sequence feeding a text column (a legacy id kept as text) has no range of its own: the caller gives it the old key's.
    found.push({ table: r.table, column: r.column, sequence: r.sequence, next, start: KEY_RANGE_START[r.type] ?? 0n });
  }
  return found;
}

/**
 * Each old key column the reverse writes, with the new-side column its value comes from: the same key
 * for a moved table (`id` → `id`), or the column a derived key is kept in (`id ← legacy_id::int`).
 * The range is that of the OLD column's type, which both sides' keys must fit.
 */
interface KeyFeed {
  old: { table: string; column: string };
  fresh: { table: string; column: string };
  type: string;
}

function keyFeeds(plans: readonly TablePlan[]): KeyFeed[] {
  const feeds: KeyFeed[] = [];
  for (const plan of plans) {
    for (const edge of plan.edges) {
      for (const k of edge.table.keyIndexes) {
        const origin = edge.origins[k]!;
        const from = origin.kind === "column" ? origin.column : origin.kind === "sql" && origin.refs.length === 1 ? origin.refs[0]! : undefined;
        if (from === undefined) continue;
        const column = edge.table.columns[k]!;
        feeds.push({ old: { table: edge.table.id, column: column.name }, fresh: { table: plan.id, column: from }, type: column.type });
      }
    }
  }
  return feeds;
}

/** Preflight of the reverse: an old-side key sequence that has reached the new side's range would collide. */
export async function checkKeyRanges(oldDb: pg.Pool, reversePlans: readonly TablePlan[], problems: string[]): Promise<void> {
  const feeds = keyFeeds(reversePlans);
  const old = [...new Map(feeds.map((f) => [`${f.old.table}.${f.old.column}`, f.old])).values()];
  for (const s of await keySequences(oldDb, old)) {
    if (s.start > 0n && s.next >= s.start) {
      problems.push(
        `reverse: the old project's sequence ${s.sequence} (${s.table}.${s.column}) is at ${s.next}, inside the range the new project's keys take from ${s.start}; ` +
          "rows inserted on both sides could collide: renumber the old keys below it or give the new side's sequences another range by hand (docs/reverse.md)",
      );
    }
  }
}

/** Moves every new-side key sequence to the start of its range when it is below it; never backwards. */
export async function raiseNewSideSequences(newDb: pg.Pool, reversePlans: readonly TablePlan[], log: Logger): Promise<void> {
  const feeds = keyFeeds(reversePlans);
  const fresh = [...new Map(feeds.map((f) => [`${f.fresh.table}.${f.fresh.column}`, f])).values()];
  const found = await keySequences(newDb, fresh.map((f) => f.fresh));
  for (const s of found) {
    // The range of the old column the value lands in (a text legacy_id feeding an integer key: integer's).
    const feed = fresh.find((f) => f.fresh.table === s.table && f.fresh.column === s.column)!;
    const start = KEY_RANGE_START[feed.type] ?? s.start;
    if (start === 0n || s.next >= start) continue;
    await newDb.query("SELECT setval($1::regclass, $2::bigint, false)", [s.sequence, start.toString()]);
    log.info({ sequence: s.sequence, from: s.next.toString(), to: start.toString() }, "new-side key sequence moved into its own range (inserts on both sides cannot collide)");
  }
}
