/**
 * Turns one decoded source row change into the target changes it implies, for one source table.
 * Built per Relation message (the source's column list may change mid-stream): it resolves, once,
 * where each target column's value sits in the source tuple. Values stay PostgreSQL text.
 */
import { UNCHANGED, type TargetChange, type Value } from "../apply/types.js";
import { PgferryError } from "../errors.js";
import type { TablePlan, TargetPlan } from "./plan.js";

/** A decoded tuple: text values, null, Buffers (binary mode) or the decoder's unchanged-TOAST marker. */
export type SourceTuple = readonly unknown[];

export interface RelationShape {
  columns: readonly { name: string }[];
}

interface CompiledTarget {
  plan: TargetPlan;
  /** Per target column, the index of its source column in the tuple. */
  positions: number[];
  keyPositions: number[];
}

export class RowMapper {
  readonly plan: TablePlan;
  /** Source columns in the stream that the mapping does not use (reported once per Relation message). */
  readonly ignoredColumns: string[];
  private readonly targets: CompiledTarget[];
  private readonly unchangedMarker: symbol;

  constructor(plan: TablePlan, relation: RelationShape, unchangedMarker: symbol) {
    this.plan = plan;
    this.unchangedMarker = unchangedMarker;
    const names = relation.columns.map((c) => c.name);
    const used = new Set<string>();
    this.targets = plan.targets.map((target) => {
      const positions = target.sourceColumns.map((column) => {
        const position = names.indexOf(column);
        if (position < 0) {
          throw new PgferryError("mapping", `source column ${plan.id}.${column} is mapped but no longer in the replication stream (was it dropped or renamed?)`, {
            hint: `update the mapping of ${plan.id} for the source's new columns and restart`,
          });
        }
        used.add(column);
        return position;
      });
      return { plan: target, positions, keyPositions: target.table.keyIndexes.map((i) => positions[i] ?? -1) };
    });
    this.ignoredColumns = names.filter((n) => !used.has(n));
  }

  private value(tuple: SourceTuple, position: number): Value {
    const v = tuple[position];
    if (v === this.unchangedMarker) return UNCHANGED;
    if (v === null || v === undefined) return null;
    if (typeof v === "string") return v;
    throw new PgferryError("protocol", `unexpected ${typeof v} value in a text-mode tuple of ${this.plan.id}`);
  }

  private row(target: CompiledTarget, tuple: SourceTuple): Value[] {
    return target.positions.map((p) => this.value(tuple, p));
  }

  private key(target: CompiledTarget, tuple: SourceTuple): (string | null)[] {
    return target.keyPositions.map((p) => {
      const v = this.value(tuple, p);
      if (v === UNCHANGED) throw new PgferryError("protocol", `key column of ${this.plan.id} arrived as unchanged TOAST; cannot identify the row`);
      return v;
    });
  }

  insert(tuple: SourceTuple): TargetChange[] {
    return this.targets.map((t) =>
      t.keyPositions.length > 0
        ? { kind: "upsert", table: t.plan.table, values: this.row(t, tuple) }
        : { kind: "insertRow", table: t.plan.table, values: this.row(t, tuple) },
    );
  }

  /** `old` is the old key ('K') or old row ('O') when the source sent one, i.e. the key changed or identity is FULL. */
  update(old: SourceTuple | undefined, tuple: SourceTuple): TargetChange[] {
    const changes: TargetChange[] = [];
    for (const t of this.targets) {
      const values = this.row(t, tuple);
      if (t.keyPositions.length === 0) {
        if (!old) throw new PgferryError("protocol", `UPDATE of keyless table ${this.plan.id} arrived without its old row`);
        changes.push({ kind: "updateRow", table: t.plan.table, old: this.oldRow(t, old), values });
        continue;
      }
      const oldKey = old ? this.key(t, old) : null;
      const newKey = this.key(t, tuple);
      if (!oldKey || sameValues(oldKey, newKey)) {
        changes.push({ kind: "upsert", table: t.plan.table, values });
      } else if (values.includes(UNCHANGED)) {
        changes.push({ kind: "rekey", table: t.plan.table, oldKey, values });
      } else {
        changes.push({ kind: "delete", table: t.plan.table, key: oldKey }, { kind: "upsert", table: t.plan.table, values });
      }
    }
    return changes;
  }

  delete(old: SourceTuple): TargetChange[] {
    return this.targets.map((t) =>
      t.keyPositions.length > 0
        ? { kind: "delete", table: t.plan.table, key: this.key(t, old) }
        : { kind: "deleteRow", table: t.plan.table, old: this.oldRow(t, old) },
    );
  }

  private oldRow(target: CompiledTarget, old: SourceTuple): (string | null)[] {
    return target.positions.map((p) => {
      const v = this.value(old, p);
      return v === UNCHANGED ? null : v;
    });
  }
}

function sameValues(a: readonly (string | null)[], b: readonly (string | null)[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
