/**
 * Loop prevention in the stream reader: a source transaction that carries one of pgferry's own
 * replication origins (an Origin message right after Begin, as PostgreSQL 15 sends it) is committed
 * to the sink without its changes, and the changes it held are counted; any other origin is data.
 * Also: every change carries its transaction's commit time from Begin, and START_REPLICATION asks
 * the server to drop originated transactions itself only where pgoutput knows how (16+).
 */
import { pino } from "pino";
import { beforeEach, describe, expect, it } from "vitest";
import { PgferryError } from "../../src/errors.js";
import type { SourceChange, SourceCommit, SourceTruncate } from "../../src/plan/changes.js";
import type { TablePlan } from "../../src/plan/plan.js";
import { pgMicrosToDate } from "../../src/source/pgoutput/messages.js";
import { pgoutputOptions } from "../../src/source/replicationConnection.js";
import { StreamReader, type ChangeSink, type LogicalMessageListener, type StreamReaderOptions } from "../../src/source/streamReader.js";
import { table } from "../fixtures/plans.js";
import { PgoutputWire, type WireCell } from "../harness/pgoutputWire.js";

const BEGIN_MICROS = 774_306_000_123_456n;

const wire = {
  begin: (finalLsn: bigint, micros = BEGIN_MICROS) => new PgoutputWire("B").u64(finalLsn).u64(micros).i32(700).build(),
  origin: (name: string) => new PgoutputWire("O").u64(0x77n).cstring(name).build(),
  commit: (commitLsn: bigint, endLsn: bigint, micros = BEGIN_MICROS) => new PgoutputWire("C").byte(0).u64(commitLsn).u64(endLsn).u64(micros).build(),
  relation: (oid: number, schema: string, name: string, columns: string[]) => {
    const w = new PgoutputWire("R").i32(oid).cstring(schema).cstring(name).byte("d".charCodeAt(0)).u16(columns.length);
    for (const [i, column] of columns.entries()) w.byte(i === 0 ? 1 : 0).cstring(column).i32(25).i32(-1);
    return w.build();
  },
  insert: (oid: number, row: WireCell[]) => new PgoutputWire("I").i32(oid).byte(0x4e).tuple(row).build(),
  update: (oid: number, row: WireCell[]) => new PgoutputWire("U").i32(oid).byte(0x4e).tuple(row).build(),
  delete: (oid: number, row: WireCell[]) => new PgoutputWire("D").i32(oid).byte("K".charCodeAt(0)).tuple(row).build(),
  truncate: (oids: number[]) => {
    const w = new PgoutputWire("T").i32(oids.length).byte(0);
    for (const oid of oids) w.i32(oid);
    return w.build();
  },
  message: (prefix: string, content: string) => new PgoutputWire("M").byte(1).u64(0x999n).cstring(prefix).bytes(Buffer.from(content, "utf8")).build(),
};

function plan(name: string, sourceColumns: string[]): TablePlan {
  return { id: `public.${name}`, source: table(`public.${name}`, [], ["id"]), sourceColumns, keyInputs: [0], edges: [] };
}

const ITEMS_OID = 16385;
const LATE_OID = 16390;
const UNMAPPED_OID = 16400;
const ITEMS = plan("items", ["id", "v"]);
const LATE = plan("late", ["id", "v"]);
const LATE_SYNC_LSN = 0x900n;
const OURS = "pgferry_forward";
const THEIRS = "pgferry_reverse";
/** A native subscription's origin: someone else's data, delivered like any other. */
const FOREIGN = "pg_16999";

type Received = SourceChange | SourceTruncate | SourceCommit | { type: "message"; prefix: string };

class RecordingSink implements ChangeSink, LogicalMessageListener {
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
  message(prefix: string): void {
    this.received.push({ type: "message", prefix });
  }
}

let sink: RecordingSink;
let filtered: [string, number][];
let walEnd: bigint;

function reader(overrides: Partial<StreamReaderOptions> = {}): StreamReader {
  const r = new StreamReader({
    plans: [ITEMS, LATE],
    syncLsns: new Map([[LATE.id, LATE_SYNC_LSN]]),
    skipThrough: 0x300n,
    sink,
    messages: sink,
    log: pino({ level: "silent" }),
    onKeepalive: () => undefined,
    ignoreOrigins: new Set([OURS, THEIRS]),
    onOriginFiltered: (origin, changes) => filtered.push([origin, changes]),
    ...overrides,
  });
  feed(
    r,
    wire.relation(ITEMS_OID, "public", "items", ["id", "v"]),
    wire.relation(LATE_OID, "public", "late", ["id", "v"]),
    wire.relation(UNMAPPED_OID, "public", "items_p1", ["id", "v"]),
  );
  return r;
}

function feed(r: StreamReader, ...payloads: Buffer[]): void {
  for (const payload of payloads) r.onXLogData(walEnd, (walEnd += 0x10n), payload);
}

const commits = () => sink.received.filter((e): e is SourceCommit => e.type === "commit").map((c) => c.commitLsn);
const changes = () => sink.received.filter((e): e is SourceChange => e.type === "change");

beforeEach(() => {
  sink = new RecordingSink();
  filtered = [];
  walEnd = 0x1000n;
});

describe("StreamReader origin filter", () => {
  it("commits a transaction of an ignored origin without its changes, truncates or messages, and counts the row changes it held", () => {
    const r = reader();
    feed(
      r,
      wire.begin(0x400n),
      wire.origin(OURS),
      wire.insert(ITEMS_OID, ["1", "a"]),
      wire.update(ITEMS_OID, ["1", "b"]),
      wire.delete(ITEMS_OID, ["1", null]),
      // Neither counted: a table outside the mapping, and one whose copy already holds the change.
      wire.insert(UNMAPPED_OID, ["2", "p"]),
      wire.insert(LATE_OID, ["3", "in its copy"]),
      wire.truncate([ITEMS_OID]),
      wire.message("pgferry-resync", "{}"),
    );
    expect(filtered).toEqual([]); // counted at the commit, not before
    feed(r, wire.commit(0x400n, 0x410n));

    // The commit still reaches the sink: the checkpoint moves past the transaction.
    expect(sink.received).toEqual([{ type: "commit", commitLsn: 0x400n, endLsn: 0x410n, commitTime: pgMicrosToDate(BEGIN_MICROS), commitMicros: BEGIN_MICROS }]);
    expect(filtered).toEqual([[OURS, 3]]);
    expect(r.inTransaction).toBe(false);

    // The next transaction, without an origin, is delivered whole: the filter ends with its transaction.
    feed(r, wire.begin(0x500n), wire.insert(ITEMS_OID, ["4", "d"]), wire.truncate([ITEMS_OID]), wire.message("pgferry-resync", "{}"), wire.commit(0x500n, 0x510n));
    expect(sink.received.slice(1).map((e) => e.type)).toEqual(["change", "truncate", "message", "commit"]);
    expect(filtered).toEqual([[OURS, 3]]);
  });

  it("delivers a transaction of an origin not in the set, and every origin when there is no set", () => {
    const r = reader();
    feed(r, wire.begin(0x400n), wire.origin(FOREIGN), wire.insert(ITEMS_OID, ["1", "a"]), wire.commit(0x400n, 0x410n));
    expect(changes().map((c) => c.new)).toEqual([["1", "a"]]);
    expect(commits()).toEqual([0x400n]);

    const unfiltered = reader({ ignoreOrigins: undefined });
    feed(unfiltered, wire.begin(0x500n), wire.origin(OURS), wire.update(ITEMS_OID, ["1", "b"]), wire.commit(0x500n, 0x510n));
    expect(changes().map((c) => c.new)).toEqual([["1", "a"], ["1", "b"]]);
    expect(commits()).toEqual([0x400n, 0x500n]);
    expect(filtered).toEqual([]);
  });

  it("counts each filtered change once: a transaction replayed at or before the checkpoint is neither delivered nor counted again", () => {
    const r = reader({ skipThrough: 0x400n });
    feed(r, wire.begin(0x400n), wire.origin(THEIRS), wire.insert(ITEMS_OID, ["1", "a"]), wire.commit(0x400n, 0x410n));
    feed(r, wire.begin(0x401n), wire.origin(THEIRS), wire.insert(ITEMS_OID, ["2", "b"]), wire.insert(ITEMS_OID, ["3", "c"]), wire.commit(0x401n, 0x420n));
    // A filtered transaction with no mapped change is still reported (with 0), once.
    feed(r, wire.begin(0x402n), wire.origin(OURS), wire.insert(UNMAPPED_OID, ["4", "d"]), wire.commit(0x402n, 0x430n));
    expect(filtered).toEqual([[THEIRS, 2], [OURS, 0]]);
    expect(commits()).toEqual([0x401n, 0x402n]);
    expect(changes()).toEqual([]);
  });

  it("attaches the commit time from Begin to every change, before the transaction's commit arrives", () => {
    const r = reader({ ignoreOrigins: undefined });
    const later = BEGIN_MICROS + 5_000_000n;
    feed(r, wire.begin(0x400n), wire.insert(ITEMS_OID, ["1", "a"]), wire.update(ITEMS_OID, ["1", "b"]), wire.delete(ITEMS_OID, ["1", null]));
    expect(changes().map((c) => c.commitTime)).toEqual([pgMicrosToDate(BEGIN_MICROS), pgMicrosToDate(BEGIN_MICROS), pgMicrosToDate(BEGIN_MICROS)]);
    feed(r, wire.commit(0x400n, 0x410n), wire.begin(0x500n, later), wire.insert(ITEMS_OID, ["2", "c"]), wire.commit(0x500n, 0x510n, later));
    expect(changes()[3]?.commitTime).toEqual(pgMicrosToDate(later));
    expect(changes()[3]?.commitTime).toEqual(new Date("2024-07-14T21:00:05.123Z"));
  });

  it("refuses an Origin message outside a transaction", () => {
    const r = reader();
    expect(() => feed(r, wire.origin(OURS))).toThrow(PgferryError);
    expect(() => feed(r, wire.origin(OURS))).toThrow(expect.objectContaining({ kind: "protocol" }) as Error);
  });
});

describe("START_REPLICATION origin option", () => {
  const base = { slot: "s", startLsn: 0n, publication: "pub", protoVersion: 1 as const, messages: true };

  it("asks for origin 'none' only when originated transactions are to be skipped and the server is 16 or later", () => {
    expect(pgoutputOptions({ ...base, skipOriginated: true }, 160000)).toEqual([`proto_version '1'`, `publication_names '"pub"'`, `messages 'true'`, `origin 'none'`]);
    expect(pgoutputOptions({ ...base, skipOriginated: true }, 170002)).toContain(`origin 'none'`);
    // pgoutput 15 refuses options it does not know: there the reader's own filter does it.
    expect(pgoutputOptions({ ...base, skipOriginated: true }, 150013)).toEqual([`proto_version '1'`, `publication_names '"pub"'`, `messages 'true'`]);
    expect(pgoutputOptions({ ...base, skipOriginated: false }, 160000)).not.toContain(`origin 'none'`);
    expect(pgoutputOptions(base, 160000)).not.toContain(`origin 'none'`);
  });
});
