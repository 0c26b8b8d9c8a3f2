/**
 * Where a plan's source columns sit in the stream's tuples. Built per Relation message (the source's
 * column list may change mid-stream: a column added is ignored, a mapped column dropped is an error
 * that names it). Projects each decoded tuple onto the plan's `sourceColumns`; values stay text, and
 * pgoutput's unchanged TOAST marker becomes the plan's `UNCHANGED` (docs/design.md, rules 3 and 4).
 * In a binary stream (apply.format) an opaque column's value stays the Buffer the source sent
 * (plan.ts `opaqueInputs`), and every other column is printed as text (binaryText.ts).
 */
import { PgferryError } from "../errors.js";
import { UNCHANGED, type SourceRow } from "../plan/changes.js";
import { opaqueInputs, type TablePlan } from "../plan/plan.js";
import { binaryToText } from "./binaryText.js";
import { UNCHANGED_TOAST, type TupleValue } from "./pgoutput/messages.js";

export interface RelationShape {
  columns: readonly { name: string; typeOid?: number }[];
}

/** What becomes of a binary value of one projected column: kept (an opaque column), printed as text, or refused. */
type BinaryValue = "keep" | ((value: Buffer) => string) | { refuse: string };

export class RelationLayout {
  /** Source columns in the stream that the mapping does not read. */
  readonly ignoredColumns: string[];
  private readonly positions: number[];
  private readonly binary: BinaryValue[];

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
    const opaque = opaqueInputs(plan);
    this.binary = plan.sourceColumns.map((column, input) => {
      const typeOid = relation.columns[this.positions[input]!]!.typeOid;
      const planned = plan.source.columns.find((c) => c.name === column)?.typeOid;
      // An opaque column goes to the target as the source sent it, which holds only while its type is the one the plan compared.
      if (opaque[input] && (typeOid === undefined || typeOid === planned)) return "keep";
      const toText = typeOid === undefined ? undefined : binaryToText(typeOid);
      if (toText) return toText;
      return {
        refuse:
          typeOid === planned
            ? `source column ${plan.id}.${column} arrived in binary, but pgferry reads it and cannot print its type (oid ${typeOid}) as text`
            : `source column ${plan.id}.${column} changed type (oid ${planned} to ${typeOid}) since pgferry started`,
      };
    });
  }

  project(tuple: readonly TupleValue[]): SourceRow {
    return this.positions.map((p, input) => {
      const v = tuple[p];
      if (v === UNCHANGED_TOAST) return UNCHANGED;
      if (v === null || v === undefined) return null;
      if (typeof v === "string") return v;
      const binary = this.binary[input]!;
      if (binary === "keep") return v;
      if (typeof binary === "function") return binary(v);
      throw new PgferryError("mapping", binary.refuse, {
        hint: `restart pgferry so that it plans the stream for the source's columns as they are now (apply.format: text keeps the stream in text); the changes stay in the slot`,
      });
    });
  }
}
