/**
 * Collects target changes of one target transaction and turns them into few set-based statements.
 * Keyed tables collapse to the last state per key (an insert then three updates of a row become one
 * upsert; unchanged-TOAST columns of a later update are filled from an earlier change of the same
 * row when the buffer has it). Keyless tables keep their changes in order. Changes whose effect
 * depends on what the target already holds, in an order the collapse would lose (a key change with
 * unchanged TOAST columns, a TRUNCATE), are barriers: everything before them becomes statements first.
 *
 * With a guard (a pipeline whose target takes writes of its own, apply/conflictGuard.ts), the keyed
 * statements are the guarded variants (guardedStatements.ts): each entry keeps the latest source
 * commit time of the changes collapsed into it, and whether it inserts its row, and the statement
 * judges conflicts with the target's own writes as it applies. Barriers and keyless tables stay
 * unguarded. Changes routed nowhere (`unrouted`) are recorded as conflicts, in one statement per
 * flush; without a guard (forward only, where no edge routes) they have nothing to be recorded in.
 */
import {
  guardedDeleteStatement,
  guardedUpdateRowsStatement,
  guardedUpsertStatement,
  unroutedStatement,
  type GuardSettings,
  type UnroutedRecord,
} from "./guardedStatements.js";
import {
  deleteOwnedStatement,
  deleteRowStatement,
  deleteStatement,
  insertRowsStatement,
  rekeyStatement,
  truncateStatement,
  updateRowStatement,
  updateRowsStatement,
  upsertStatement,
  type Cell,
} from "./statements.js";
import { UNCHANGED, type TargetChange, type Value } from "../plan/changes.js";
import type { TargetTable } from "../plan/targetTable.js";
import type { ApplyChange, Statement } from "./types.js";

interface KeyedEntry {
  /** The key column values, in `keyIndexes` order. */
  key: Cell[];
  /** Final row values, or null when the row ends deleted. */
  values: Value[] | null;
  /** The row existed on the target before and was deleted in between: delete before writing it anew. */
  replaces: boolean;
  bytes: number;
  /** The latest source commit time of the changes collapsed into this entry (undefined when none carried one). */
  at: Date | undefined;
  /**
   * The entry puts its row on the target: the first change collapsed into it inserted the row
   * (TargetChange `inserted`), or it follows a delete of the key in this batch. Otherwise a guarded
   * upsert does not bring back a row the target no longer has.
   */
  inserted: boolean;
}

type KeylessChange = Extract<TargetChange, { kind: "insertRow" | "updateRow" | "deleteRow" }>;

interface TableBuffer {
  table: TargetTable;
  keyed: Map<string, KeyedEntry>;
  keyless: KeylessChange[];
}

function valueBytes(values: readonly Value[]): number {
  let bytes = 32;
  for (const v of values) bytes += typeof v === "string" || Buffer.isBuffer(v) ? v.length + 8 : 8;
  return bytes;
}

function changedIndexes(values: readonly Value[]): number[] {
  const indexes: number[] = [];
  values.forEach((v, i) => {
    if (v !== UNCHANGED) indexes.push(i);
  });
  return indexes;
}

/** The later of two commit times, either of which may be unknown. */
function latest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.getTime() > a.getTime() ? b : a;
}

/** Rows of one keyed statement, with the commit time of each and whether it inserts its row (used only when guarded). */
interface KeyedRows {
  rows: Cell[][];
  at: (Date | undefined)[];
  inserted: boolean[];
}

function cells(values: readonly Value[], indexes: readonly number[]): Cell[] {
  return indexes.map((i) => {
    const v = values[i];
    return v === UNCHANGED || v === undefined ? null : v;
  });
}

export interface ChangeBufferOptions {
  /** Conflict detection for the keyed statements (the static part of the pipeline's ConflictGuard). */
  guard?: GuardSettings;
}

export class ChangeBuffer {
  constructor(private readonly options: ChangeBufferOptions = {}) {}

  /** One buffer per edge's view of a target table: sources merged into one table write different columns. */
  private tables = new Map<TargetTable, TableBuffer>();
  /** Statements fixed by a barrier, in order, ahead of what `tables` still collects. */
  private ready: Statement[] = [];
  /** Unrouted changes to record (guarded only), written with the next flush. */
  private unrouted: UnroutedRecord[] = [];
  private entries = 0;
  private heldBytes = 0;

  /** Rows held (collapsed entries and ordered changes), for the batch row limit. */
  get rows(): number {
    return this.entries;
  }

  /** Approximate memory held, for the batch byte limit. */
  get bytes(): number {
    return this.heldBytes;
  }

  /**
   * Ordered mode: every change becomes its own statement, in source order. Used to get past a batch
   * that a collapse reordered into a unique-constraint conflict the source never had (a unique value
   * moved from one row to another across changes).
   */
  ordered = false;

  add(change: ApplyChange): void {
    this.collect(change);
    if (this.ordered) this.flushTables();
  }

  private collect(change: ApplyChange): void {
    switch (change.kind) {
      case "upsert":
        this.upsert(change.table, change.values, change.at, change.inserted === true);
        return;
      case "delete":
        this.deleteKey(change.table, change.key, change.at);
        return;
      case "rekey":
        this.rekey(change.table, change.oldKey, change.values, change.at);
        return;
      case "insertRow":
      case "updateRow":
      case "deleteRow": {
        const buffer = this.bufferFor(change.table);
        buffer.keyless.push(change);
        this.entries += 1;
        this.heldBytes += valueBytes(change.kind === "deleteRow" ? change.old : change.values);
        return;
      }
      case "statement":
        this.barrier(change.statement);
        return;
      case "unrouted":
        // Not a barrier: a record in the conflict log depends on no row, so the batch collapses around it.
        if (!this.options.guard) return;
        this.unrouted.push({ table: change.table, keyColumns: change.keyColumns, key: change.key, at: change.at });
        this.entries += 1;
        this.heldBytes += valueBytes(change.key);
        return;
      case "deleteOwned":
        // Other sources' pending rows in the same table stay; this source's ran before it, in order.
        this.barrier(deleteOwnedStatement(change.table, change.match));
        return;
      case "truncate":
        // Changes before a TRUNCATE of a table are void; the truncate itself must run in order.
        for (const table of change.tables) this.forget(table.id);
        this.barrier(truncateStatement(change.tables));
        return;
    }
  }

  /** Every held change as statements, in an order that gives the same final state; empties the buffer. */
  drain(): Statement[] {
    this.flushTables();
    const statements = this.ready;
    this.ready = [];
    this.entries = 0;
    this.heldBytes = 0;
    return statements;
  }

  private bufferFor(table: TargetTable): TableBuffer {
    let buffer = this.tables.get(table);
    if (!buffer) {
      buffer = { table, keyed: new Map(), keyless: [] };
      this.tables.set(table, buffer);
    }
    return buffer;
  }

  private upsert(table: TargetTable, values: Value[], at: Date | undefined, inserted: boolean): void {
    const buffer = this.bufferFor(table);
    const key = cells(values, table.keyIndexes);
    const id = JSON.stringify(key);
    const previous = buffer.keyed.get(id);
    let merged = values;
    if (previous?.values) {
      // A later change's unchanged columns keep the value an earlier change in this buffer set.
      const earlier = previous.values;
      merged = values.map((v, i) => (v === UNCHANGED ? (earlier[i] ?? UNCHANGED) : v));
    }
    const replaces = previous !== undefined && (previous.replaces || previous.values === null);
    // Decided by the first change of the row in the batch (later ones update what it wrote), or by a delete before.
    const inserts = previous === undefined ? inserted : previous.values === null || previous.inserted;
    this.put(buffer, id, { key, values: merged, replaces, bytes: valueBytes(merged), at: latest(previous?.at, at), inserted: inserts });
  }

  private deleteKey(table: TargetTable, key: Cell[], at: Date | undefined): void {
    const buffer = this.bufferFor(table);
    const id = JSON.stringify(key);
    const previous = buffer.keyed.get(id);
    this.put(buffer, id, { key, values: null, replaces: false, bytes: valueBytes(key), at: latest(previous?.at, at), inserted: false });
  }

  private rekey(table: TargetTable, oldKey: Cell[], values: Value[], at: Date | undefined): void {
    const previous = this.tables.get(table)?.keyed.get(JSON.stringify(oldKey));
    if (previous?.values) {
      // The old row is in this buffer: its values fill the unchanged columns; a plain delete + upsert follows.
      const earlier = previous.values;
      const resolved = values.map((v, i) => (v === UNCHANGED ? (earlier[i] ?? UNCHANGED) : v));
      if (!resolved.includes(UNCHANGED)) {
        this.deleteKey(table, oldKey, at);
        this.upsert(table, resolved, at, true);
        return;
      }
    }
    const changed = changedIndexes(values);
    this.barrier(rekeyStatement(table, oldKey, changed, cells(values, changed)));
  }

  private put(buffer: TableBuffer, id: string, entry: KeyedEntry): void {
    const previous = buffer.keyed.get(id);
    if (previous) this.heldBytes -= previous.bytes;
    else this.entries += 1;
    this.heldBytes += entry.bytes;
    buffer.keyed.set(id, entry);
  }

  /** Drops what is held for a target table, from every source that feeds it. */
  private forget(tableId: string): void {
    for (const [key, buffer] of this.tables) {
      if (buffer.table.id !== tableId) continue;
      for (const entry of buffer.keyed.values()) this.heldBytes -= entry.bytes;
      this.entries -= buffer.keyed.size + buffer.keyless.length;
      for (const change of buffer.keyless) this.heldBytes -= valueBytes(change.kind === "deleteRow" ? change.old : change.values);
      this.tables.delete(key);
    }
  }

  private barrier(statement: Statement): void {
    this.flushTables();
    this.ready.push(statement);
    this.entries += 1;
  }

  /** Turns what `tables` collected into statements appended to `ready`. */
  private flushTables(): void {
    for (const buffer of this.tables.values()) {
      if (buffer.keyed.size > 0) this.ready.push(...this.keyedStatements(buffer));
      if (buffer.keyless.length > 0) this.ready.push(...keylessStatements(buffer.table, buffer.keyless));
    }
    this.tables = new Map();
    if (this.unrouted.length > 0 && this.options.guard) this.ready.push(unroutedStatement(this.unrouted, this.options.guard));
    this.unrouted = [];
  }

  private keyedStatements(buffer: TableBuffer): Statement[] {
    const { table } = buffer;
    const deletes: KeyedRows = { rows: [], at: [], inserted: [] };
    // Rows deleted to be inserted again (guarded, they are judged as updates: guardedDeleteStatement).
    const guarded = this.options.guard !== undefined;
    const replaced: KeyedRows = guarded ? { rows: [], at: [], inserted: [] } : deletes;
    // Upserts grouped by the set of columns they carry (unchanged TOAST columns left out).
    const groups = new Map<string, KeyedRows & { indexes: number[] }>();
    for (const entry of buffer.keyed.values()) {
      if (entry.values === null || entry.replaces) {
        const into = entry.values === null ? deletes : replaced;
        into.rows.push(entry.key);
        into.at.push(entry.at);
      }
      if (entry.values === null) continue;
      const indexes = changedIndexes(entry.values);
      // A column's values travel as text or as one binary array (statements.ts unnestRows): rows group by which.
      const values = entry.values;
      const mask = indexes.map((i) => (Buffer.isBuffer(values[i]) ? `${i}b` : i)).join(",");
      let group = groups.get(mask);
      if (!group) {
        group = { indexes, rows: [], at: [], inserted: [] };
        groups.set(mask, group);
      }
      group.rows.push(cells(entry.values, indexes));
      group.at.push(entry.at);
      group.inserted.push(entry.inserted);
    }
    const statements: Statement[] = [];
    // A part written only in part carries its row back as updates: its deletes are not its to make.
    if (deletes.rows.length > 0 && !table.updateOnly) statements.push(this.deleteStatement(table, deletes));
    if (replaced !== deletes && replaced.rows.length > 0 && !table.updateOnly) statements.push(this.deleteStatement(table, replaced, true));
    for (const group of groups.values()) {
      const update = group.indexes.length < table.columns.length || table.updateOnly === true;
      const statement = update ? this.updateStatement(table, group.indexes, group) : this.upsertStatement(table, group.indexes, group);
      if (statement) statements.push(statement);
    }
    return statements;
  }

  private deleteStatement(table: TargetTable, keys: KeyedRows, replacing = false): Statement {
    const { guard } = this.options;
    return guard ? guardedDeleteStatement(table, keys, guard, replacing) : deleteStatement(table, keys.rows);
  }

  private upsertStatement(table: TargetTable, indexes: readonly number[], rows: KeyedRows): Statement {
    const { guard } = this.options;
    return guard ? guardedUpsertStatement(table, indexes, rows, guard) : upsertStatement(table, indexes, rows.rows);
  }

  private updateStatement(table: TargetTable, indexes: readonly number[], rows: KeyedRows): Statement | null {
    const { guard } = this.options;
    return guard ? guardedUpdateRowsStatement(table, indexes, rows, guard) : updateRowsStatement(table, indexes, rows.rows);
  }
}

/** Keyless changes in order; consecutive inserts travel together. */
function keylessStatements(table: TargetTable, changes: readonly KeylessChange[]): Statement[] {
  const statements: Statement[] = [];
  let inserts: Cell[][] = [];
  const allColumns = table.columns.map((_, i) => i);
  const flushInserts = () => {
    if (inserts.length > 0) statements.push(insertRowsStatement(table, inserts));
    inserts = [];
  };
  for (const change of changes) {
    if (change.kind === "insertRow") {
      // Consecutive inserts travel together while each column keeps one format (text or binary).
      const row = cells(change.values, allColumns);
      const previous = inserts[inserts.length - 1];
      if (previous && row.some((v, i) => Buffer.isBuffer(v) !== Buffer.isBuffer(previous[i]))) flushInserts();
      inserts.push(row);
      continue;
    }
    flushInserts();
    if (change.kind === "updateRow") {
      const changed = changedIndexes(change.values);
      statements.push(updateRowStatement(table, change.old, changed, cells(change.values, changed)));
    } else {
      statements.push(deleteRowStatement(table, change.old));
    }
  }
  flushInserts();
  return statements;
}
