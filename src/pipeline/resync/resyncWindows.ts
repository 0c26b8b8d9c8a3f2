/**
 * The stream side of a resync: between a chunk's low and high watermark, the keys the stream
 * changes in that table are noted; at the high watermark, the chunk's rows whose keys the stream
 * did not touch are emitted (in stream order) as writes, followed by the range repair and the
 * progress statement. Stream changes win over chunk rows, so nothing older overwrites anything newer.
 */
import { rangeDeleteStatement } from "../../apply/statements.js";
import type { OrderedStatements, Statement } from "../../apply/types.js";
import type { SourceChange, SourceRow } from "../../plan/changes.js";
import type { EdgePlan, TablePlan } from "../../plan/plan.js";
import { windowId, type Watermark } from "./watermarks.js";

export interface RegisteredChunk {
  mark: Omit<Watermark, "mark">;
  plan: TablePlan;
  rows: SourceRow[];
  /** Exclusive lower and inclusive upper bound of the chunk's source keys (null: unbounded). */
  lo: string[] | null;
  hi: string[] | null;
  final: boolean;
  progress: (lastKey: string[] | null, rows: number, final: boolean) => Statement;
  onApplied: () => void;
}

export function sourceKey(plan: TablePlan, row: SourceRow): string {
  return JSON.stringify(plan.keyInputs.map((i) => row[i] ?? null));
}

/** Targets keyed by the source key itself, column for column: their key range can be repaired. */
function rangeRepairable(plan: TablePlan, edge: EdgePlan): boolean {
  const key = plan.source.identityKey ?? [];
  return (
    key.length > 0 &&
    edge.table.keyIndexes.length === key.length &&
    edge.table.keyIndexes.every((k, j) => {
      const origin = edge.origins[k];
      return origin?.kind === "column" && origin.column === key[j];
    })
  );
}

export class ResyncWindows {
  private readonly open = new Map<string, { table: string; changed: Set<string> }>();
  private readonly chunks = new Map<string, RegisteredChunk>();

  get active(): boolean {
    return this.open.size > 0;
  }

  register(chunk: RegisteredChunk): void {
    this.chunks.set(windowId(chunk.mark), chunk);
  }

  /** Forgets a chunk whose high watermark will not come (its worker stopped). */
  unregister(mark: Omit<Watermark, "mark">): void {
    this.chunks.delete(windowId(mark));
    this.open.delete(windowId(mark));
  }

  onLow(mark: Watermark): void {
    this.open.set(windowId(mark), { table: mark.table, changed: new Set() });
  }

  /** A streamed change to `plan`'s table: its keys (old and new) are the stream's from now on. */
  track(plan: TablePlan, change: SourceChange): void {
    for (const window of this.open.values()) {
      if (window.table !== plan.id) continue;
      if (change.new) window.changed.add(sourceKey(plan, change.new));
      if (change.old) window.changed.add(sourceKey(plan, change.old));
    }
  }

  /** The events that apply the chunk at this point of the stream, or null for a watermark we do not know. */
  onHigh(mark: Watermark): { changes: SourceChange[]; end: OrderedStatements } | null {
    const id = windowId(mark);
    const window = this.open.get(id);
    const chunk = this.chunks.get(id);
    this.open.delete(id);
    this.chunks.delete(id);
    if (!window || !chunk) return null;
    const { plan } = chunk;
    const kept = chunk.rows.filter((row) => !window.changed.has(sourceKey(plan, row)));
    // Written as updates without an old row: a row that passes the filter is upserted, one that does not is deleted.
    const changes: SourceChange[] = kept.map((row) => ({ type: "change", plan, op: "update", old: null, oldIsFullRow: false, new: row, resync: true }));
    const keep = [...chunk.rows.map((r) => sourceKey(plan, r)), ...window.changed].map((k) => JSON.parse(k) as (string | null)[]);
    const statements: Statement[] = [];
    for (const edge of plan.edges) {
      if (rangeRepairable(plan, edge)) statements.push(rangeDeleteStatement(edge.table, { lo: chunk.lo, hi: chunk.final ? null : chunk.hi }, keep, edge.ownership));
    }
    statements.push(chunk.progress(chunk.hi, kept.length, chunk.final));
    return { changes, end: { type: "statements", statements, onApplied: chunk.onApplied } };
  }
}
