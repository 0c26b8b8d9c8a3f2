/**
 * Keys drawn from sequences while both sides insert (docs/reverse.md, "Inserts on both sides"). The
 * old project keeps its sequences; the new project's key sequences (serial and identity columns of
 * the tables the reverse reads) are moved into the upper half of their type's range, at or above
 * KEY_RANGE_START, so a row inserted on either side never takes a key the other side has used or
 * will use. pgferry moves them once, when the reverse pipeline starts (never backwards), and preflight
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
  // pg_sequences.last_value is null until the first nextval(): then the next value is the start.
  const { rows } = await pool.query<{ table: string; column: string; sequence: string; next: string; type: string }>(
    `SELECT k.tbl AS table, k.col AS column, s.seq AS sequence, format_type(a.atttypid, NULL) AS type,
            coalesce(p.last_value + p.increment_by, p.start_value)::text AS next
     FROM unnest($1::text[], $2::text[]) AS k(tbl, col)
     CROSS JOIN LATERAL pg_get_serial_sequence(k.tbl, k.col) AS s(seq)
     JOIN pg_attribute a ON a.attrelid = k.tbl::regclass AND a.attname = k.col
     JOIN pg_sequences p ON format('%I.%I', p.schemaname, p.sequencename)::regclass = s.seq::regclass
     WHERE s.seq IS NOT NULL`,
    [columns.map((c) => c.table), columns.map((c) => c.column)],
  );
  return rows.flatMap((r) => {
    const start = KEY_RANGE_START[r.type];
    return start === undefined ? [] : [{ table: r.table, column: r.column, sequence: r.sequence, next: BigInt(r.next), start }];
  });
}

/** The reverse plans' key columns: on the new side (each plan's source key), and on the old side (each edge's target key). */
function keyColumns(plans: readonly TablePlan[]): { fresh: { table: string; column: string }[]; old: { table: string; column: string }[] } {
  const fresh = plans.flatMap((plan) => (plan.source.identityKey ?? []).map((column) => ({ table: plan.id, column })));
  const old = new Map<string, { table: string; column: string }>();
  for (const plan of plans) {
    for (const edge of plan.edges) {
      for (const k of edge.table.keyIndexes) old.set(`${edge.table.id}.${edge.table.columns[k]!.name}`, { table: edge.table.id, column: edge.table.columns[k]!.name });
    }
  }
  return { fresh, old: [...old.values()] };
}

/** Preflight of the reverse: an old-side key sequence that has reached the new side's range would collide. */
export async function checkKeyRanges(oldDb: pg.Pool, reversePlans: readonly TablePlan[], problems: string[]): Promise<void> {
  for (const s of await keySequences(oldDb, keyColumns(reversePlans).old)) {
    if (s.next >= s.start) {
      problems.push(
        `reverse: the old project's sequence ${s.sequence} (${s.table}.${s.column}) is at ${s.next}, inside the range the new project's keys take from ${s.start}; ` +
          "rows inserted on both sides could collide: renumber the old keys below it or give the new side's sequences another range by hand (docs/reverse.md)",
      );
    }
  }
}

/** Moves every new-side key sequence to the start of its range when it is below it; never backwards. */
export async function raiseNewSideSequences(newDb: pg.Pool, reversePlans: readonly TablePlan[], log: Logger): Promise<void> {
  for (const s of await keySequences(newDb, keyColumns(reversePlans).fresh)) {
    if (s.next >= s.start) continue;
    await newDb.query("SELECT setval($1::regclass, $2::bigint, false)", [s.sequence, s.start.toString()]);
    log.info({ sequence: s.sequence, from: s.next.toString(), to: s.start.toString() }, "new-side key sequence moved into its own range (inserts on both sides cannot collide)");
  }
}
