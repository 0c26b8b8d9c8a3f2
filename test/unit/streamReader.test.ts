import { pino } from "pino";
import { beforeEach, describe, expect, it } from "vitest";
import { PgferryError } from "../../src/errors.js";
import { UNCHANGED, type SourceChange, type SourceCommit, type SourceTruncate } from "../../src/plan/changes.js";
import type { TablePlan } from "../../src/plan/plan.js";
import { pgMicrosToDate } from "../../src/source/pgoutput/messages.js";
import { StreamReader, type ChangeSink, type LogicalMessageListener, type StreamReaderOptions } from "../../src/source/streamReader.js";
import { table } from "../fixtures/plans.js";
import { PgoutputWire, TOAST, type WireCell } from "../harness/pgoutputWire.js";

type Cell = WireCell;

const wire = {
  begin: (finalLsn: bigint, xid = 700) => new PgoutputWire("B").u64(finalLsn).u64(COMMIT_MICROS).i32(xid).build(),
  commit: (commitLsn: bigint, endLsn: bigint) => new PgoutputWire("C").byte(0).u64(commitLsn).u64(endLsn).u64(COMMIT_MICROS).build(),
  /** Every column of type text (oid 25) unless `types` says otherwise. */
  relation: (oid: number, schema: string, name: string, columns: string[], types: Record<string, number> = {}) => {
    const w = new PgoutputWire("R").i32(oid).cstring(schema).cstring(name).byte("d".charCodeAt(0)).u16(columns.length);
    for (const [i, column] of columns.entries()) w.byte(i === 0 ? 1 : 0).cstring(column).i32(types[column] ?? 25).i32(-1);
    return w.build();
  },
  insert: (oid: number, row: Cell[]) => new PgoutputWire("I").i32(oid).byte(0x4e).tuple(row).build(),
  update: (oid: number, row: Cell[], old?: { kind: "K" | "O"; row: Cell[] }) => {
    const w = new PgoutputWire("U").i32(oid);
    if (old) w.byte(old.kind.charCodeAt(0)).tuple(old.row);
    return w.byte(0x4e).tuple(row).build();
  },
  delete: (oid: number, kind: "K" | "O", row: Cell[]) => new PgoutputWire("D").i32(oid).byte(kind.charCodeAt(0)).tuple(row).build(),
  truncate: (oids: number[]) => {
    const w = new PgoutputWire("T").i32(oids.length).byte(0);
    for (const oid of oids) w.i32(oid);
    return w.build();
  },
  message: (prefix: string, content: string, transactional = true) =>
    new PgoutputWire("M").byte(transactional ? 1 : 0).u64(0x999n).cstring(prefix).bytes(Buffer.from(content, "utf8")).build(),
  streamStart: (xid: number) => new PgoutputWire("S").i32(xid).byte(1).build(),
};

const COMMIT_MICROS = 774_306_000_123_456n;
const COMMIT_TIME = pgMicrosToDate(COMMIT_MICROS);

function plan(schema: string, name: string, sourceColumns: string[]): TablePlan {
  return { id: `${schema}.${name}`, source: table(`${schema}.${name}`, [], ["id"]), sourceColumns, keyInputs: [0], edges: [] };
}

// The stream's column order (id, body, extra, note) differs from the plans' (id, note, body), and
// `extra` is not mapped: the reader projects each tuple onto the plan's source columns.
const ITEMS_OID = 16385;
const LATE_OID = 16390;
const PARTITION_OID = 16400;
const ITEMS = plan("public", "items", ["id", "note", "body"]);
const LATE = plan("public", "late", ["id", "v"]);
const LATE_SYNC_LSN = 0x500n;

type Received =
  | SourceChange
  | SourceTruncate
  | SourceCommit
  | { type: "message"; prefix: string; content: string };

/** Records what reaches the sink and the message listener, in one sequence. */
class FakeSink implements ChangeSink, LogicalMessageListener {
  readonly received: Received[] = [];
  change(change: SourceChange): void {
    this.received.push(change);
  }
  truncate(truncate: SourceTruncate): void {
    this.received.push(truncate);
  }
  commit(commit: SourceCommit): void {
    this.received.push(commit);
  }
  message(prefix: string, content: Buffer): void {
    this.received.push({ type: "message", prefix, content: content.toString("utf8") });
  }
}

let sink: FakeSink;
let keepalives: [bigint, boolean][];
let walEnd: bigint;

function reader(overrides: Partial<StreamReaderOptions> = {}): StreamReader {
  return new StreamReader({
    plans: [ITEMS, LATE],
    syncLsns: new Map([[LATE.id, LATE_SYNC_LSN]]),
    skipThrough: 0x300n,
    sink,
    messages: sink,
    log: pino({ level: "silent" }),
    onKeepalive: (end, reply) => keepalives.push([end, reply]),
    ...overrides,
  });
}

function feed(r: StreamReader, ...payloads: Buffer[]): void {
  for (const payload of payloads) r.onXLogData(walEnd, (walEnd += 0x10n), payload);
}

/** A reader that has seen the Relation messages of both mapped tables and of an unmapped partition. */
function described(overrides: Partial<StreamReaderOptions> = {}): StreamReader {
  const r = reader(overrides);
  feed(
    r,
    wire.relation(ITEMS_OID, "public", "items", ["id", "body", "extra", "note"]),
    wire.relation(LATE_OID, "public", "late", ["id", "v"]),
    wire.relation(PARTITION_OID, "public", "items_p1", ["id", "body", "extra", "note"]),
  );
  return r;
}

const change = (p: TablePlan, op: SourceChange["op"], old: SourceChange["old"], new_: SourceChange["new"], oldIsFullRow = false): SourceChange => ({
  type: "change",
  plan: p,
  op,
  old,
  oldIsFullRow,
  new: new_,
  commitTime: COMMIT_TIME,
});
const commit = (commitLsn: bigint, endLsn: bigint): SourceCommit => ({ type: "commit", commitLsn, endLsn, commitTime: COMMIT_TIME, commitMicros: COMMIT_MICROS });

beforeEach(() => {
  sink = new FakeSink();
  keepalives = [];
  walEnd = 0x1000n;
});

describe("StreamReader", () => {
  it("turns a transaction into projected source changes, a truncate, a message and a commit, in stream order", () => {
    const r = described();
    expect(r.inTransaction).toBe(false);
    feed(r, wire.begin(0x400n));
    expect(r.inTransaction).toBe(true);
    feed(
      r,
      wire.insert(ITEMS_OID, ["1", "a big body", "ignored", null]),
      // An unchanged TOAST body: it stays UNCHANGED, never a value.
      wire.update(ITEMS_OID, ["1", TOAST, "ignored", "n1"]),
      // The key changed: the old key arrives ('K', other columns null).
      wire.update(ITEMS_OID, ["2", TOAST, "ignored", "n2"], { kind: "K", row: ["1", null, null, null] }),
      // REPLICA IDENTITY FULL: the whole old row ('O'), itself with an unchanged TOAST column.
      wire.update(ITEMS_OID, ["2", "b", "x", "n3"], { kind: "O", row: ["2", TOAST, "x", "n2"] }),
      wire.message("pgferry-resync", '{"mark":"low"}'),
      wire.delete(ITEMS_OID, "K", ["2", null, null, null]),
      wire.delete(ITEMS_OID, "O", ["3", "c", "x", "n"]),
      // A partition published via its root: not in the mapping, its changes are not delivered.
      wire.insert(PARTITION_OID, ["9", "p", "x", "n"]),
      wire.truncate([ITEMS_OID, PARTITION_OID, LATE_OID]),
    );
    expect(r.inTransaction).toBe(true);
    feed(r, wire.commit(0x400n, 0x410n));
    expect(r.inTransaction).toBe(false);

    expect(sink.received).toEqual([
      change(ITEMS, "insert", null, ["1", null, "a big body"]),
      change(ITEMS, "update", null, ["1", "n1", UNCHANGED]),
      change(ITEMS, "update", ["1", null, null], ["2", "n2", UNCHANGED]),
      change(ITEMS, "update", ["2", "n2", UNCHANGED], ["2", "n3", "b"], true),
      { type: "message", prefix: "pgferry-resync", content: '{"mark":"low"}' },
      change(ITEMS, "delete", ["2", null, null], null),
      change(ITEMS, "delete", ["3", "n", "c"], null, true),
      // LATE's changes before its sync LSN are in its copy already (0x400 < 0x500): left out here too.
      { type: "truncate", plans: [ITEMS] },
      commit(0x400n, 0x410n),
    ]);
    // The change carries its plan itself (not a copy), and the marker is the plan's UNCHANGED.
    const second = sink.received[1] as SourceChange;
    expect(second.plan).toBe(ITEMS);
    expect(second.new?.[2]).toBe(UNCHANGED);
    expect(r.lastReceived).toBe(walEnd);
  });

  it("skips a transaction at or below the checkpoint, messages included, and delivers the next one", () => {
    const r = described({ skipThrough: 0x600n });
    feed(r, wire.begin(0x5f0n), wire.insert(ITEMS_OID, ["1", "a", "x", "n"]), wire.message("pgferry-resync", "m1"), wire.truncate([ITEMS_OID]), wire.commit(0x5f0n, 0x5f8n));
    feed(r, wire.begin(0x600n));
    expect(r.inTransaction).toBe(true); // a skipped transaction is still open until its commit
    feed(r, wire.update(ITEMS_OID, ["1", "b", "x", "n"]), wire.commit(0x600n, 0x608n));
    expect(sink.received).toEqual([]);

    feed(r, wire.begin(0x601n), wire.delete(ITEMS_OID, "K", ["1", null, null, null]), wire.message("pgferry-resync", "m2"), wire.commit(0x601n, 0x610n));
    expect(sink.received).toEqual([
      change(ITEMS, "delete", ["1", null, null], null),
      { type: "message", prefix: "pgferry-resync", content: "m2" },
      commit(0x601n, 0x610n),
    ]);
  });

  it("skips a table's changes committed before its sync LSN, and only that table's", () => {
    const r = described({ skipThrough: 0n });
    feed(r, wire.begin(LATE_SYNC_LSN - 1n), wire.insert(LATE_OID, ["1", "old"]), wire.insert(ITEMS_OID, ["7", "b", "x", "n"]), wire.truncate([LATE_OID]));
    feed(r, wire.commit(LATE_SYNC_LSN - 1n, LATE_SYNC_LSN + 8n));
    feed(r, wire.begin(LATE_SYNC_LSN), wire.update(LATE_OID, ["1", "new"]), wire.truncate([LATE_OID]), wire.commit(LATE_SYNC_LSN, LATE_SYNC_LSN + 0x10n));
    expect(sink.received).toEqual([
      change(ITEMS, "insert", null, ["7", "n", "b"]),
      // The transaction is still delivered (its commit moves the checkpoint), without LATE's changes.
      commit(LATE_SYNC_LSN - 1n, LATE_SYNC_LSN + 8n),
      change(LATE, "update", null, ["1", "new"]),
      { type: "truncate", plans: [LATE] },
      commit(LATE_SYNC_LSN, LATE_SYNC_LSN + 0x10n),
    ]);
  });

  it("ignores logical messages outside a transaction, or when nobody listens", () => {
    const r = described();
    feed(r, wire.message("pgferry-resync", "non-transactional", false));
    const deaf = described({ messages: undefined });
    feed(deaf, wire.begin(0x400n), wire.message("pgferry-resync", "unheard"), wire.commit(0x400n, 0x408n));
    expect(sink.received).toEqual([commit(0x400n, 0x408n)]);
  });

  it("follows a Relation sent again: a column added is ignored, a mapped column dropped is a mapping error", () => {
    const r = described();
    feed(r, wire.relation(ITEMS_OID, "public", "items", ["extra2", "note", "id", "body", "extra"]));
    feed(r, wire.begin(0x400n), wire.insert(ITEMS_OID, ["e2", "n", "1", "b", "e"]));
    expect(sink.received).toEqual([change(ITEMS, "insert", null, ["1", "n", "b"])]);
    expect(() => feed(r, wire.relation(ITEMS_OID, "public", "items", ["id", "body"]))).toThrow(
      expect.objectContaining({ kind: "mapping", message: expect.stringContaining("public.items.note") as unknown }) as Error,
    );
  });

  it("refuses protocol violations: a change outside a transaction, a binary value it cannot print, a streamed transaction", () => {
    const r = described();
    const kind = (fn: () => void) => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(PgferryError);
        return (error as PgferryError).kind;
      }
      return "no error";
    };
    expect(kind(() => feed(r, wire.insert(ITEMS_OID, ["1", "a", "x", "n"])))).toBe("protocol");
    feed(r, wire.begin(0x400n));
    // The key is read by pgferry: a binary interval (oid 1186) has no printer (source/binaryText.ts).
    feed(r, wire.relation(ITEMS_OID, "public", "items", ["id", "body", "extra", "note"], { id: 1186 }));
    expect(kind(() => feed(r, wire.insert(ITEMS_OID, [Buffer.alloc(16), "b", "x", "n"])))).toBe("mapping");
    expect(kind(() => feed(r, wire.streamStart(5)))).toBe("protocol");
    expect(sink.received).toEqual([]);
  });

  it("prints a binary value of a column it reads, by its type in the Relation message", () => {
    const r = described();
    feed(r, wire.relation(ITEMS_OID, "public", "items", ["id", "body", "extra", "note"], { id: 20 }));
    const id = Buffer.alloc(8);
    id.writeBigInt64BE(-9_007_199_254_740_993n);
    feed(r, wire.begin(0x400n), wire.insert(ITEMS_OID, [id, Buffer.from("bödy"), "x", null]), wire.commit(0x400n, 0x408n));
    const change = sink.received[0] as SourceChange;
    expect(change.new).toEqual(["-9007199254740993", null, "bödy"]);
  });

  it("forwards keepalives and tracks the highest position received", () => {
    const r = reader();
    r.onKeepalive(0x2000n, true);
    r.onKeepalive(0x1000n, false);
    expect(keepalives).toEqual([
      [0x2000n, true],
      [0x1000n, false],
    ]);
    expect(r.lastReceived).toBe(0x2000n);
  });
});
