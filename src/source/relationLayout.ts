/**
 * Where a plan's source columns sit in the stream's tuples. Built per Relation message (the source's
 * column list may change mid-stream: a column added is ignored, a mapped column dropped is an error
 * that names it). Projects each decoded tuple onto the plan's `sourceColumns`; values stay text, and
 * pgoutput's unchanged TOAST marker becomes the plan's `UNCHANGED` (docs/design.md, rules 3 and 4).
 */
import { PgferryError } from "../errors.js";
import { UNCHANGED, type SourceRow } from "../plan/changes.js";
import type { TablePlan } from "../plan/plan.js";
import { UNCHANGED_TOAST, type TupleValue } from "./pgoutput/messages.js";

export interface RelationShape {
  columns: readonly { name: string }[];
}

export class RelationLayout {
  /** Source columns in the stream that the mapping does not read. */
  readonly ignoredColumns: string[];
  private readonly positions: number[];

  constructor(readonly plan: TablePlan, relation: RelationShape) {
    const names = relation.columns.map((c) => c.name);
    this.positions = plan.sourceColumns.map((column) => {
      const position = names.indexOf(column);
      if (position < 0) {
        throw new PgferryError("mapping", `source column ${plan.id}.${column} is mapped but no longer in the replication stream (was it dropped or renamed?)`, {
          hint: `update the mapping of ${plan.id} for the source's new columns and restart; the changes stay in the slot`,
        });
      }
      return position;
    });
    this.ignoredColumns = names.filter((n) => !plan.sourceColumns.includes(n));
  }

  project(tuple: readonly TupleValue[]): SourceRow {
    return this.positions.map((p) => {
      const v = tuple[p];
      if (v === UNCHANGED_TOAST) return UNCHANGED;
      if (v === null || v === undefined) return null;
      if (typeof v === "string") return v;
      throw new PgferryError("protocol", `unexpected ${typeof v} value in a text-mode tuple of ${this.plan.id}`);
    });
  }
}
