/**
 * `pgferry sequences sync` (docs/cutover.md, "Sequences"). The forward pipeline copies keys, not
 * sequences: after the switch the new project's first insert would draw a key the old project already
 * used (pgstream#1203). Forward, each new-side sequence behind a key pgferry writes (serial or identity,
 * found through the compiled plan) that is behind (isAhead) is moved to max(the old side's sequences of
 * the same key, the column's max) + gap; a merged target takes the max over all its sources. Reverse (a rollback),
 * the old project's key sequences likewise past the new side's. Sequences named in `sequences.extra`
 * are added. A sequence never moves backwards: the new side's may sit in the upper half of the key
 * range while both sides write (pipeline/keyRanges.ts), and stay there.
 */
import type pg from "pg";
import type { Logger } from "pino";
import { sequenceSettings, type Config } from "../config/schema.js";
import { PgferryError, tagEndpoint } from "../errors.js";
import { compileReversePlan, loadPlan } from "../plan/loadPlan.js";
import type { TablePlan } from "../plan/plan.js";
import { poolEndpoint } from "../sql/endpoint.js";
import { qualifiedName, quoteIdent } from "../sql/quote.js";
import type { SequenceChange } from "./types.js";

export type SyncDirection = "forward" | "reverse";

export interface SequenceSyncOptions {
  config: Config;
  direction: SyncDirection;
  old: pg.Pool;
  new: pg.Pool;
  dryRun: boolean;
  log?: Logger;
  /** The compiled plan of `direction` (a daemon has it); compiled from both catalogs when absent. */
  plans?: readonly TablePlan[];
}

/** One sequence's distance to what it must stay ahead of (the `pgferry_sequence_gap` gauge). */
export interface SequenceGap {
  side: "source" | "target";
  sequence: string;
  column: string | null;
  /** The next value nextval() would return. */
  next: bigint;
  /** The lowest next value that cannot collide: max(the other side's next values, column max + 1). */
  needed: bigint;
  /** next − needed: ≥ 0 ahead, negative behind (an insert may collide). */
  gap: bigint;
}

type Side = "source" | "target";
interface Table { schema: string; name: string; id: string }
interface SequenceState { sequence: string; next: bigint; increment: bigint; max: bigint; updatable: boolean; role: string }

/** A sequence on the side being moved, and what it must stay ahead of. */
interface Candidate {
  sequence: string;
  column: { table: Table; name: string } | null;
  /** The other side's sequences (for the same key, or named in sequences.extra). */
  others: Set<string>;
}

interface Assessed {
  state: SequenceState;
  column: string | null;
  others: SequenceState[];
  /** null: no rows, or not an integer column. */
  columnMax: bigint | null;
  needed: bigint | null;
}

const INTEGER_TYPES = new Set(["smallint", "integer", "bigint"]);

/** Moves the sequences of `direction` ahead; returns what moved (with dryRun: what would). */
export async function syncSequences(options: SequenceSyncOptions): Promise<SequenceChange[]> {
  const gap = BigInt(sequenceSettings(options.config).gap);
  const moved = options.direction === "forward" ? options.new : options.old;
  const { side, assessed } = await assess(options, true);
  const otherSide: Side = side === "target" ? "source" : "target";
  const changes: { change: SequenceChange; state: SequenceState }[] = [];
  const problems: string[] = [];
  for (const a of assessed) {
    if (a.state.increment <= 0n) {
      options.log?.warn({ sequence: a.state.sequence }, "a descending sequence is not synced: move it by hand");
      continue;
    }
    if (a.needed === null || isAhead(a, gap)) continue;
    const to = a.needed + gap;
    if (to > a.state.max) {
      problems.push(`${side}: ${a.state.sequence} would have to move to ${to.toString()}, beyond its MAXVALUE ${a.state.max.toString()} (ALTER SEQUENCE ${a.state.sequence} AS bigint, or a smaller sequences.gap)`);
      continue;
    }
    const reason = [
      ...a.others.map((o) => `${otherSide} ${o.sequence} at ${(o.next - o.increment).toString()}`),
      ...(a.column === null ? [] : [a.columnMax === null ? "column empty" : `column max ${a.columnMax.toString()}`]),
      `gap ${gap.toString()}`,
    ].join(", ");
    changes.push({ change: { side, sequence: a.state.sequence, column: a.column, from: a.state.next, to, reason }, state: a.state });
  }
  if (!options.dryRun) {
    for (const { state } of changes) {
      if (!state.updatable) problems.push(`${side}: the role lacks UPDATE on sequence ${state.sequence} (GRANT UPDATE ON SEQUENCE ${state.sequence} TO ${state.role}), which setval needs`);
    }
  }
  if (problems.length > 0) throw refusal(problems, { source: options.old, target: options.new });

  const done: SequenceChange[] = [];
  for (const { change, state } of changes) {
    if (!options.dryRun) {
      // Re-read in the same statement: a sequence another session advanced past `to` meanwhile is left alone.
      const { rowCount } = await moved.query(
        `SELECT setval($1::regclass, $2::bigint, false)
         FROM (SELECT CASE WHEN is_called THEN last_value + $3::bigint ELSE last_value END AS next FROM ${state.sequence}) AS s
         WHERE s.next < $2::bigint`,
        [state.sequence, change.to.toString(), state.increment.toString()],
      );
      if (rowCount === 0) continue;
    }
    options.log?.info(
      { side: change.side, sequence: change.sequence, column: change.column, from: change.from.toString(), to: change.to.toString(), reason: change.reason, dryRun: options.dryRun },
      options.dryRun ? "sequence would be moved ahead (dry run)" : "sequence moved ahead of the keys the other side used",
    );
    done.push(change);
  }
  return done;
}

/**
 * Whether a sequence is far enough ahead to leave alone (never backwards). The gap is room for the keys
 * the other side may still take before traffic moves, so it is kept over the other side's sequences;
 * the column's rows only need to be below the next value. A column max at or past it means rows this
 * sequence did not hand out (copied from the other side), and the sequence moves past them plus the
 * gap. Rows this side inserted from the sequence itself do not move it again (a sync every N seconds
 * after the switch would otherwise skip a gap's worth of keys after every insert).
 */
function isAhead(a: Assessed, gap: bigint): boolean {
  return a.others.every((o) => a.state.next >= o.next + gap) && (a.columnMax === null || a.state.next > a.columnMax);
}

/**
 * Per sequence sync would consider, how far ahead of what it needs it is (pgferry_sequence_gap).
 * Sequences without a requirement (an empty column and no other sequence), descending ones and ones
 * pgferry's role cannot read are left out; sync reports the last.
 */
export async function sequenceGaps(options: Omit<SequenceSyncOptions, "dryRun" | "log" | "direction"> & { direction?: SyncDirection }): Promise<SequenceGap[]> {
  const { side, assessed } = await assess({ ...options, direction: options.direction ?? "forward" }, false);
  return assessed.flatMap((a) =>
    a.needed === null || a.state.increment <= 0n ? [] : [{ side, sequence: a.state.sequence, column: a.column, next: a.state.next, needed: a.needed, gap: a.state.next - a.needed }],
  );
}

/**
 * `sequences.syncEverySeconds` > 0: syncs forward at once and then every N seconds (each run after
 * the previous one ended) until the returned stop function is called (safe to call twice). A failed
 * run is logged and the next one tries again; nothing stops the daemon.
 */
export function startSequenceSync(options: Omit<SequenceSyncOptions, "direction" | "dryRun" | "log"> & { log: Logger }): () => Promise<void> {
  const every = sequenceSettings(options.config).syncEverySeconds;
  if (every <= 0) return () => Promise.resolve();
  return periodically(every * 1000, () =>
    syncSequences({ ...options, direction: "forward", dryRun: false }).then(
      (changes) => options.log.debug({ moved: changes.length }, "sequence sync done"),
      (error: unknown) => options.log.warn({ err: error, hint: (error as PgferryError).hint }, "sequence sync failed; retrying in sequences.syncEverySeconds"),
    ),
  );
}

/**
 * Runs `work` now and then `intervalMs` after each run ends, until the returned function is called
 * (it waits for a run in progress; safe to call twice). `work` handles its own failures.
 */
export function periodically(intervalMs: number, work: () => Promise<void>): () => Promise<void> {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = (): void => {
    running = work().finally(() => {
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  };
  tick();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}

/** One error for every problem found, before anything changed: `privilege` (with the GRANTs) when each is a missing right. */
function refusal(problems: string[], pools: Record<Side, pg.Pool>): PgferryError {
  const privilege = problems.every((p) => p.includes("GRANT"));
  const grants = problems.flatMap((p) => /\((GRANT [^)]+)\)/.exec(p)?.[1] ?? []);
  const error = new PgferryError(privilege ? "privilege" : "preflight", `cannot sync sequences:\n${problems.map((p) => `  - ${p}`).join("\n")}`, {
    hint: privilege ? `${grants.join("; ")}; then run pgferry sequences sync again (nothing was changed)` : "fix the listed problems and run pgferry sequences sync again (nothing was changed)",
  });
  // All on one database: the report names it (side and URL).
  for (const side of ["source", "target"] as const) {
    const endpoint = poolEndpoint(pools[side]);
    if (endpoint && problems.every((p) => p.startsWith(`${side}: `))) return tagEndpoint(error, endpoint.side, endpoint.url);
  }
  return error;
}

/** The sequences of `direction`, read; unreadable ones are a privilege refusal when `strict`, left out otherwise. */
async function assess(options: Omit<SequenceSyncOptions, "dryRun" | "log">, strict: boolean): Promise<{ side: Side; assessed: Assessed[] }> {
  const forward = options.direction === "forward";
  const side: Side = forward ? "target" : "source";
  const otherSide: Side = forward ? "source" : "target";
  const moved = forward ? options.new : options.old;
  const other = forward ? options.old : options.new;
  const plans = options.plans ?? (await compilePlans(options));
  const problems: string[] = [];

  // Key columns on the moved side, each with the other side's columns it is copied from.
  const keys = new Map<string, { table: Table; name: string; from: Map<string, { table: Table; name: string }> }>();
  for (const plan of plans) {
    for (const edge of plan.edges) {
      for (const k of edge.table.keyIndexes) {
        const name = edge.table.columns[k]!.name;
        const entry = keys.get(`${edge.table.id}.${name}`) ?? { table: edge.table, name, from: new Map() };
        keys.set(`${edge.table.id}.${name}`, entry);
        const origin = edge.origins[k]!;
        // Only a copied key has a sequence of its own on the other side; a derived one (md5(...)::uuid) has none.
        if (origin.kind === "column") entry.from.set(`${plan.id}.${origin.column}`, { table: plan.source, name: origin.column });
      }
    }
  }
  const keyList = [...keys.values()];
  const movedKeys = await serialSequences(moved, keyList);
  const otherKeys = await serialSequences(other, keyList.flatMap((k) => [...k.from.values()]));

  const candidates = new Map<string, Candidate>();
  for (const key of keyList) {
    const found = movedKeys.get(`${key.table.id}.${key.name}`);
    if (!found) continue;
    const c = candidates.get(found.sequence) ?? { sequence: found.sequence, column: { table: key.table, name: key.name }, others: new Set<string>() };
    candidates.set(found.sequence, c);
    for (const from of key.from.values()) {
      const seq = otherKeys.get(`${from.table.id}.${from.name}`)?.sequence;
      if (seq) c.others.add(seq);
    }
  }
  const extra = sequenceSettings(options.config).extra;
  const [movedExtra, otherExtra] = await Promise.all([
    canonicalSequences(moved, extra.map((e) => (forward ? e.target : e.source))),
    canonicalSequences(other, extra.map((e) => (forward ? e.source : e.target))),
  ]);
  extra.forEach((e, i) => {
    const [mine, theirs] = [movedExtra[i], otherExtra[i]];
    if (mine === null) problems.push(`sequences.extra[${i}].${forward ? "target" : "source"}: no sequence ${forward ? e.target : e.source} in the ${side} database`);
    if (theirs === null) problems.push(`sequences.extra[${i}].${forward ? "source" : "target"}: no sequence ${forward ? e.source : e.target} in the ${otherSide} database`);
    if (!mine || !theirs) return;
    const c = candidates.get(mine) ?? { sequence: mine, column: null, others: new Set<string>() };
    candidates.set(mine, c);
    c.others.add(theirs);
  });

  const [states, otherStates] = await Promise.all([
    readSequences(moved, [...candidates.keys()], side, problems),
    readSequences(other, [...new Set([...candidates.values()].flatMap((c) => [...c.others]))], otherSide, problems),
  ]);
  const integerColumns = [...candidates.values()].flatMap((c) => (c.column && INTEGER_TYPES.has(movedKeys.get(`${c.column.table.id}.${c.column.name}`)!.type) ? [c.column] : []));
  const maxima = await columnMaxima(moved, integerColumns, side, problems);
  if (strict && problems.length > 0) throw refusal(problems, { source: options.old, target: options.new });

  const assessed: Assessed[] = [];
  for (const c of candidates.values()) {
    const state = states.get(c.sequence);
    if (!state) continue;
    const others = [...c.others].flatMap((s) => otherStates.get(s) ?? []);
    const column = c.column ? `${c.column.table.id}.${c.column.name}` : null;
    const columnMax = column === null ? null : (maxima.get(column) ?? null);
    const floors = [...others.map((o) => o.next), ...(columnMax === null ? [] : [columnMax + 1n])];
    const needed = floors.length === 0 ? null : floors.reduce((a, b) => (a > b ? a : b));
    assessed.push({ state, column, others, columnMax, needed });
  }
  return { side, assessed: assessed.sort((a, b) => a.state.sequence.localeCompare(b.state.sequence)) };
}

async function compilePlans(options: Omit<SequenceSyncOptions, "dryRun" | "log">): Promise<readonly TablePlan[]> {
  const { config } = options;
  if (options.direction === "forward") {
    const { plans, problems } = await loadPlan({ mappings: config.tables, snapshotFormat: config.snapshot.format, bidirectional: config.reverse !== undefined }, options.old, options.new);
    if (problems.length > 0) throw new PgferryError("mapping", `the mapping does not compile:\n${problems.map((p) => `  - ${p}`).join("\n")}`, { hint: "run pgferry plan --check" });
    return plans;
  }
  const reverse = await compileReversePlan({ mappings: config.tables, snapshotFormat: config.snapshot.format }, { old: options.old, new: options.new });
  if (reverse.problems.length > 0) {
    throw new PgferryError("mapping", `the reverse mapping does not compile:\n${reverse.problems.map((p) => `  - ${p}`).join("\n")}`, { hint: "run pgferry plan --reverse" });
  }
  return reverse.plans;
}

/** The sequence behind each column (serial, identity or OWNED BY), by `table.column`, with the column's type. */
async function serialSequences(pool: pg.Pool, columns: readonly { table: Table; name: string }[]): Promise<Map<string, { sequence: string; type: string }>> {
  if (columns.length === 0) return new Map();
  const { rows } = await pool.query<{ i: string; seq: string; type: string }>(
    `SELECT k.i::text AS i, s.seq, format_type(a.atttypid, NULL) AS type
     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(tbl, col, i)
     CROSS JOIN LATERAL pg_get_serial_sequence(k.tbl, k.col) AS s(seq)
     JOIN pg_attribute a ON a.attrelid = k.tbl::regclass AND a.attname = k.col
     WHERE s.seq IS NOT NULL`,
    [columns.map((c) => qualifiedName(c.table)), columns.map((c) => c.name)],
  );
  return new Map(rows.map((r) => { const c = columns[Number(r.i) - 1]!; return [`${c.table.id}.${c.name}`, { sequence: r.seq, type: r.type }]; }));
}

/** `schema.seq` names from the config as the catalog quotes them (as pg_get_serial_sequence does); null when there is no such sequence. */
async function canonicalSequences(pool: pg.Pool, names: readonly string[]): Promise<(string | null)[]> {
  if (names.length === 0) return [];
  const { rows } = await pool.query<{ seq: string | null }>(
    `SELECT CASE WHEN c.relkind = 'S' THEN format('%I.%I', n.nspname, c.relname) END AS seq
     FROM unnest($1::text[]) WITH ORDINALITY AS k(name, i)
     LEFT JOIN pg_class c ON c.oid = to_regclass(k.name)
     LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
     ORDER BY k.i`,
    [names.map((name) => qualifiedName({ schema: name.slice(0, name.indexOf(".")), name: name.slice(name.indexOf(".") + 1) }))],
  );
  return rows.map((r) => r.seq);
}

/**
 * Each sequence's next value. Read from the sequence itself (SELECT on it): pg_sequences shows no
 * last value after setval(..., false), which is how a sync leaves it.
 */
async function readSequences(pool: pg.Pool, sequences: readonly string[], side: Side, problems: string[]): Promise<Map<string, SequenceState>> {
  if (sequences.length === 0) return new Map();
  const { rows: meta } = await pool.query<{ seq: string; increment: string; max: string; readable: boolean; updatable: boolean; role: string }>(
    `SELECT k.seq, s.seqincrement::text AS increment, s.seqmax::text AS max, has_sequence_privilege(s.seqrelid, 'SELECT') AS readable,
            has_sequence_privilege(s.seqrelid, 'UPDATE') AS updatable, current_user AS role
     FROM unnest($1::text[]) AS k(seq) JOIN pg_sequence s ON s.seqrelid = k.seq::regclass`,
    [sequences],
  );
  for (const m of meta.filter((r) => !r.readable)) problems.push(`${side}: the role lacks SELECT on sequence ${m.seq} (GRANT SELECT ON SEQUENCE ${m.seq} TO ${m.role}), which reading its value needs`);
  const readable = meta.filter((r) => r.readable);
  if (readable.length === 0) return new Map();
  // The names come from the catalog, quoted by it (pg_get_serial_sequence, format('%I.%I')).
  const { rows } = await pool.query<{ seq: string; last: string; called: boolean }>(
    readable.map((m, i) => `SELECT $${i + 1}::text AS seq, last_value::text AS last, is_called AS called FROM ${m.seq}`).join(" UNION ALL "),
    readable.map((m) => m.seq),
  );
  const byName = new Map(meta.map((m) => [m.seq, m]));
  return new Map(rows.map((r) => {
    const m = byName.get(r.seq)!;
    const increment = BigInt(m.increment);
    return [r.seq, { sequence: r.seq, next: r.called ? BigInt(r.last) + increment : BigInt(r.last), increment, max: BigInt(m.max), updatable: m.updatable, role: m.role }];
  }));
}

/** max() of each integer key column (an index scan), by `table.column`; absent when the table is empty. */
async function columnMaxima(pool: pg.Pool, columns: readonly { table: Table; name: string }[], side: Side, problems: string[]): Promise<Map<string, bigint>> {
  if (columns.length === 0) return new Map();
  const { rows: denied } = await pool.query<{ i: string; role: string }>(
    `SELECT k.i::text AS i, current_user AS role FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(tbl, col, i)
     WHERE NOT has_column_privilege(k.tbl::regclass, k.col, 'SELECT')`,
    [columns.map((c) => qualifiedName(c.table)), columns.map((c) => c.name)],
  );
  for (const d of denied) {
    const c = columns[Number(d.i) - 1]!;
    problems.push(`${side}: the role lacks SELECT on ${c.table.id} (GRANT SELECT ON TABLE ${qualifiedName(c.table)} TO ${d.role}), which reading the max of ${c.name} needs`);
  }
  if (denied.length > 0) return new Map();
  const { rows } = await pool.query<{ i: number; max: string | null }>(
    columns.map((c, i) => `SELECT ${i + 1} AS i, max(${quoteIdent(c.name)})::text AS max FROM ${qualifiedName(c.table)}`).join(" UNION ALL "),
  );
  return new Map(rows.flatMap((r) => { const c = columns[r.i - 1]!; return r.max === null ? [] : [[`${c.table.id}.${c.name}`, BigInt(r.max)] as const]; }));
}
