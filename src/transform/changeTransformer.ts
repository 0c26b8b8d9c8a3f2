/**
 * transform/ — source rows to target rows: the transformer, the evaluator of derived columns and filters, code hooks, and target DDL for `plan --ddl`.
 *
 * Turns a run of source changes into the target changes the mapping implies, in order. Plain
 * columns and constants are mapped here; derived columns and filters are evaluated by the source
 * database, one query per edge for the whole run (through an Evaluator: SourceEvaluator on the
 * source database, an in-memory one in unit tests); hooks run last.
 *
 * An `exact` filter (a forward `where`) holds on the target as "exactly the source rows that pass": a
 * row that passes is upserted, one that does not is deleted by key (a no-op when it was never there),
 * so an UPDATE that moves a row into or out of the filter becomes an insert or a delete without knowing
 * the old row. A `route` filter (a reverse split by the forward constants, docs/reverse.md) only says
 * which edge a row belongs to: a row that does not pass is another edge's, so nothing is deleted for
 * it; a delete goes where the old row passed; a row that moved from one route to another leaves the
 * first. A change that passes no route of its table is reported (`unrouted`), never guessed.
 */
import type { ApplyChange, OrderedStatements } from "../apply/types.js";
import { PgferryError } from "../errors.js";
import { readable, UNCHANGED, type SourceChange, type SourceRow, type SourceTruncate, type Value } from "../plan/changes.js";
import type { TargetTable } from "../plan/targetTable.js";
import type { EdgePlan, TablePlan } from "../plan/plan.js";
import { runHook, type HookRow, type RowHook } from "./codeHook.js";
import { evaluatedInputs, type Evaluation, type Evaluator } from "./evaluator.js";

type Key = (string | null)[];
/** A source row on one edge: its target rows (none when filtered out, several from a hook), whether it passed, its mapped values. */
interface Mapped {
  rows: Value[][];
  pass: boolean;
  mapped: Value[];
}

interface EdgeRows {
  plan: TablePlan;
  /** The source columns (indexes into `plan.sourceColumns`) the edge's SQL reads. */
  inputs: number[];
  rows: (string | null)[][];
  /** Per event index: where its new / old row sits in `rows`. */
  newAt: Map<number, number>;
  oldAt: Map<number, number>;
  result?: Evaluation;
}

export interface TransformerOptions {
  /** Needed when an edge is `evaluated` (derived columns, filters) or re-reads unchanged TOAST. */
  evaluator?: Evaluator;
  hooks: ReadonlyMap<string, RowHook>;
}

function sameKey(a: Key, b: Key): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** With the whole old row at hand (REPLICA IDENTITY FULL), unchanged TOAST values are known: take them. */
function completeFromOld(change: SourceChange): SourceRow | null {
  const { old, new: row } = change;
  if (!row || !old || !change.oldIsFullRow || !row.includes(UNCHANGED)) return row;
  return row.map((v, i) => (v === UNCHANGED ? (old[i] ?? null) : v));
}

/**
 * Whether the old row passed the edge's filter, when that is known: from a whole old row, or from the
 * identity columns when the filter reads only those (a key-only old tuple carries them, and an update
 * that sends no old tuple left them, and so the filter's result, as they are). Undefined: not known.
 */
function passedBefore(event: SourceChange, edge: EdgePlan, next: Mapped | null, previous: Mapped | null): boolean | undefined {
  if (previous && (event.oldIsFullRow || !edge.filter)) return previous.pass;
  if (!edge.filter) return undefined;
  const { plan } = event;
  const identity = plan.keyInputs.map((k) => plan.sourceColumns[k]!);
  if (identity.length === 0 || !edge.filter.refs.every((r) => identity.includes(r))) return undefined;
  if (previous) return previous.pass;
  return event.op === "update" ? next?.pass : undefined;
}

export class ChangeTransformer {
  constructor(private readonly options: TransformerOptions) {}

  async transform(events: readonly (SourceChange | SourceTruncate | OrderedStatements)[]): Promise<ApplyChange[]> {
    const rows = events.map((e) => (e.type === "change" ? completeFromOld(e) : null));
    const gone = await this.reselectUnchanged(events, rows);
    const evaluations = await this.evaluate(events, rows);
    const out: ApplyChange[] = [];
    events.forEach((event, i) => {
      if (event.type === "truncate") {
        this.truncate(event, out);
        return;
      }
      if (event.type === "statements") {
        for (const statement of event.statements) out.push({ kind: "statement", statement });
        return;
      }
      const mapped = event.plan.edges.map((edge) => {
        const at = evaluations.get(edge);
        const evaluated = (row: "new" | "old") => {
          const position = (row === "new" ? at?.newAt : at?.oldAt)?.get(i);
          return position === undefined || !at?.result ? undefined : { values: at.result.values[position]!, pass: at.result.pass[position]! };
        };
        const map = (source: SourceRow | null, which: "new" | "old") => (source ? this.map(edge, source, evaluated(which)) : null);
        const next = map(rows[i] ?? null, "new");
        const previous = map(event.old, "old");
        return { edge, next, previous, before: passedBefore(event, edge, next, previous) };
      });
      if (gone.has(i)) {
        // The row is no longer on the source: its delete follows in the stream. Only a key it left goes now.
        for (const { edge, previous, before } of mapped) {
          if (previous && edge.table.keyIndexes.length > 0 && (edge.filterMode !== "route" || before === true)) {
            out.push({ kind: "delete", table: edge.table, key: this.key(edge, previous.mapped), at: event.commitTime });
          }
        }
        return;
      }
      if (this.unrouted(event, rows[i] ?? null, mapped, out)) return;
      for (const { edge, next, previous, before } of mapped) {
        if (edge.table.keyIndexes.length > 0) this.keyed(event, edge, next, previous, before, out);
        else this.keyless(event, edge, next, previous, out);
      }
    });
    return out;
  }

  /**
   * A change of a table whose edges all route (a reverse split by constants) that passes none of them
   * (a delete: whose old row passed none) belongs to no old table: it is reported as a conflict with
   * the row's identity, and nothing is written for it. Returns whether it was.
   */
  private unrouted(event: SourceChange, row: SourceRow | null, mapped: readonly { edge: EdgePlan; next: Mapped | null; before: boolean | undefined }[], out: ApplyChange[]): boolean {
    const { plan } = event;
    if (plan.edges.length === 0 || plan.edges.some((e) => e.filterMode !== "route")) return false;
    const identified = event.op === "delete" ? event.old : row;
    // Without the row the change is malformed: keyed()/keyless() say so.
    if (!identified) return false;
    const routed = event.op === "delete" ? mapped.some((m) => m.before === true) : mapped.some((m) => m.next?.pass === true);
    if (routed) return false;
    // A keyless table has no identity but the whole row.
    const inputs = plan.keyInputs.length > 0 ? plan.keyInputs : plan.sourceColumns.map((_, c) => c);
    out.push({
      kind: "unrouted",
      table: plan.id,
      keyColumns: inputs.map((c) => plan.sourceColumns[c]!),
      key: inputs.map((c) => {
        const v = identified[c];
        return v === UNCHANGED || v === undefined ? null : readable(v, `${plan.id}.${plan.sourceColumns[c]!}`);
      }),
      at: event.commitTime,
    });
    return true;
  }

  /**
   * An update whose mapping needs values the source left out as unchanged TOAST (a filter the row
   * may just have entered, an expression over a TOASTed column) gets them re-read from the source,
   * one query per table. Returns the events whose row is gone from the source since.
   */
  private async reselectUnchanged(events: readonly (SourceChange | SourceTruncate | OrderedStatements)[], rows: (SourceRow | null)[]): Promise<Set<number>> {
    const byPlan = new Map<TablePlan, number[]>();
    events.forEach((event, i) => {
      const row = rows[i];
      if (event.type !== "change" || !row || !row.includes(UNCHANGED) || !event.plan.edges.some((e) => e.evaluated)) return;
      byPlan.set(event.plan, [...(byPlan.get(event.plan) ?? []), i]);
    });
    const gone = new Set<number>();
    for (const [plan, indexes] of byPlan) {
      if (!this.options.evaluator) throw new PgferryError("internal", `${plan.id} needs unchanged TOAST values re-read but no evaluator was configured`);
      const keyOf = (row: SourceRow) => plan.keyInputs.map((k) => row[k] as string | null);
      const current = await this.options.evaluator.reselect(plan, indexes.map((i) => keyOf(rows[i]!)));
      for (const i of indexes) {
        const found = current.get(JSON.stringify(keyOf(rows[i]!)));
        if (!found) {
          gone.add(i);
          rows[i] = null;
        } else rows[i] = rows[i]!.map((v, c) => (v === UNCHANGED ? (found[c] ?? null) : v));
      }
    }
    return gone;
  }

  /** One evaluation query per edge that needs the source database, covering every row of the run. */
  private async evaluate(events: readonly (SourceChange | SourceTruncate | OrderedStatements)[], rows: (SourceRow | null)[]): Promise<Map<EdgePlan, EdgeRows>> {
    const byEdge = new Map<EdgePlan, EdgeRows>();
    events.forEach((event, i) => {
      if (event.type !== "change") return;
      for (const edge of event.plan.edges) {
        if (!edge.evaluated) continue;
        let entry = byEdge.get(edge);
        if (!entry) {
          entry = { plan: event.plan, inputs: evaluatedInputs(event.plan, edge), rows: [], newAt: new Map(), oldAt: new Map() };
          byEdge.set(edge, entry);
        }
        const { inputs } = entry;
        const add = (row: SourceRow, positions: Map<number, number>) => {
          for (const input of inputs) {
            // reselectUnchanged has filled every unchanged TOAST value such a row had.
            if (row[input] === UNCHANGED) {
              throw new PgferryError("internal", `tables[${edge.index}]: ${event.plan.id}.${event.plan.sourceColumns[input]} is still an unchanged TOAST value after the re-read`);
            }
          }
          positions.set(i, entry.rows.length);
          entry.rows.push(row as (string | null)[]);
        };
        const row = rows[i];
        if (row) add(row, entry.newAt);
        if (event.old) add(event.old, entry.oldAt);
      }
    });
    for (const [edge, entry] of byEdge) {
      if (!this.options.evaluator) throw new PgferryError("internal", `tables[${edge.index}] needs SQL evaluation but no evaluator was configured`);
      entry.result = await this.options.evaluator.evaluate(entry.plan, edge, entry.rows);
    }
    return byEdge;
  }

  /** The target rows a source row becomes on this edge: none (filtered out), one, or several (a hook). */
  private map(edge: EdgePlan, source: SourceRow, evaluated: { values: (string | null)[]; pass: boolean } | undefined): Mapped {
    let s = 0;
    const values = edge.origins.map((o): Value => {
      if (o.kind === "column") return source[o.input] ?? null;
      if (o.kind === "const") return o.value;
      return evaluated?.values[s++] ?? null;
    });
    const pass = evaluated?.pass ?? true;
    return { rows: pass ? [values] : [], pass, mapped: values };
  }

  private hook(edge: EdgePlan, plan: TablePlan, values: Value[], op: "insert" | "update" | "delete"): Value[][] | null {
    const hook = edge.hook ? this.options.hooks.get(edge.hook) : undefined;
    if (!hook) return [values];
    const row: HookRow = {};
    edge.table.columns.forEach((c, i) => { row[c.name] = values[i] === UNCHANGED ? undefined : readable(values[i], `${edge.table.id}.${c.name}`); });
    const result = runHook(hook, row, { op, source: plan.id, target: edge.table.id }, edge.index);
    if (result === null) return null;
    return result.map((r) => edge.table.columns.map((c) => (r[c.name] === undefined ? UNCHANGED : r[c.name]!)));
  }

  private key(edge: EdgePlan, values: Value[]): Key {
    return edge.table.keyIndexes.map((k) => {
      const v = values[k];
      if (v === UNCHANGED || v === undefined) throw new PgferryError("protocol", `key column ${edge.table.columns[k]!.name} of ${edge.table.id} has no value; cannot identify the row`);
      return readable(v, `key column ${edge.table.id}.${edge.table.columns[k]!.name}`);
    });
  }

  private keyed(event: SourceChange, edge: EdgePlan, next: Mapped | null, previous: Mapped | null, before: boolean | undefined, out: ApplyChange[]): void {
    const table = edge.table;
    const plan = event.plan;
    // The source commit time travels with each keyed change, for the apply side's conflict checks.
    const at = event.commitTime;
    const route = edge.filterMode === "route";
    if (event.op === "delete") {
      if (!previous) throw new PgferryError("protocol", `DELETE on ${plan.id} arrived without its old key`);
      // A route edge's table holds only rows whose old row passed: any other row with that key is another's.
      if (route && before !== true) return;
      const rows = edge.hook ? this.hook(edge, plan, previous.mapped, "delete") : null;
      for (const row of rows ?? [previous.mapped]) out.push({ kind: "delete", table, key: this.key(edge, row), at });
      return;
    }
    if (!next) throw new PgferryError("protocol", `${event.op.toUpperCase()} on ${plan.id} arrived without its new row`);
    // On a route edge the old key is this table's only if the old row was routed here; a row that came
    // from another route is new here, and its old key names a row of another table.
    const oldKey = previous && (!route || before === true) ? this.key(edge, previous.mapped) : null;
    if (route && !next.pass) {
      // Routed elsewhere now: the row leaves this table if it was here (moved to another old table).
      if (event.op === "update" && oldKey) out.push({ kind: "delete", table, key: oldKey, at });
      return;
    }
    const rows = next.pass ? this.hook(edge, plan, next.mapped, event.op) : null;
    if (rows === null || rows.length === 0) {
      // Filtered out (or dropped by the hook): whatever the target held for this row goes.
      if (event.op === "update") {
        const newKey = this.key(edge, next.mapped);
        out.push({ kind: "delete", table, key: newKey, at });
        if (oldKey && !sameKey(oldKey, newKey)) out.push({ kind: "delete", table, key: oldKey, at });
      }
      return;
    }
    // Whether the change puts the row on this table, rather than updating one it holds. Not knowing
    // whether the old row passed an exact filter counts as entering it (the row may be new here); a
    // hook that returns several rows may return ones the table did not have.
    const entered = route ? before === false : edge.filter !== null && before !== true;
    const inserted = event.op === "insert" || event.resync === true || entered || rows.length > 1;
    for (const values of rows) {
      const newKey = this.key(edge, values);
      if (oldKey && !sameKey(oldKey, newKey) && rows.length === 1) {
        if (values.includes(UNCHANGED)) out.push({ kind: "rekey", table, oldKey, values, at });
        else out.push({ kind: "delete", table, key: oldKey, at }, { kind: "upsert", table, values, at, inserted: true });
      } else {
        out.push({ kind: "upsert", table, values, at, inserted });
      }
    }
  }

  /** Old and new rows are whole (REPLICA IDENTITY FULL): each goes by its own filter, which serves both filter modes. */
  private keyless(event: SourceChange, edge: EdgePlan, next: Mapped | null, previous: Mapped | null, out: ApplyChange[]): void {
    const table = edge.table;
    if (event.op !== "insert" && !previous) throw new PgferryError("protocol", `${event.op.toUpperCase()} on keyless table ${event.plan.id} arrived without its old row`);
    const first = (mapped: Mapped | null, op: "insert" | "update" | "delete") =>
      mapped?.pass ? (this.hook(edge, event.plan, mapped.mapped, op)?.[0] ?? null) : null;
    const before = event.op === "insert" ? null : first(previous, "delete");
    const after = event.op === "delete" ? null : first(next, event.op);
    // Old values are parameters of the row match only (apply/statements.ts matchOneRow): binary ones go as they came.
    const asOld = (values: Value[]) => values.map((v) => (v === UNCHANGED ? null : v));
    if (before && after) out.push({ kind: "updateRow", table, old: asOld(before), values: after });
    else if (before) out.push({ kind: "deleteRow", table, old: asOld(before) });
    else if (after) out.push({ kind: "insertRow", table, values: after });
  }

  private truncate(event: SourceTruncate, out: ApplyChange[]): void {
    const whole: TargetTable[] = [];
    for (const plan of event.plans) {
      for (const edge of plan.edges) {
        if (edge.ownership) out.push({ kind: "deleteOwned", table: edge.table, match: edge.ownership });
        else whole.push(edge.table);
      }
    }
    if (whole.length > 0) out.push({ kind: "truncate", tables: whole });
  }
}
