import { describe, expect, it } from "vitest";
import { PgferryError } from "../../src/errors.js";
import { PgoutputDecoder } from "../../src/source/pgoutput/decoder.js";
import { pgMicrosToDate, UNCHANGED_TOAST, type PgoutputMessage, type Relation } from "../../src/source/pgoutput/messages.js";
import { PgoutputWire, TOAST } from "../harness/pgoutputWire.js";


interface ColumnSpec {
  name: string;
  typeOid: number;
  typeMod?: number;
  key?: boolean;
}

function relationWire(oid: number, ns: string, name: string, columns: ColumnSpec[], opts: { identity?: string; xid?: number } = {}): Buffer {
  const w = new PgoutputWire("R");
  if (opts.xid !== undefined) w.u32(opts.xid);
  w.u32(oid).cstring(ns).cstring(name).byte(opts.identity ?? "d").u16(columns.length);
  for (const c of columns) w.byte(c.key ? 1 : 0).cstring(c.name).u32(c.typeOid).i32(c.typeMod ?? -1);
  return w.build();
}

const ITEMS = 16385;
const NOTES = 16390;
const ITEM_COLUMNS: ColumnSpec[] = [
  { name: "id", typeOid: 20, key: true },
  { name: "body", typeOid: 25 },
  { name: "embedding", typeOid: 90000, typeMod: 1536 },
  { name: "blob", typeOid: 17 },
];

/** A decoder that has seen Relation messages for public.items (4 columns) and public.notes (2 columns). */
function primed(): { decoder: PgoutputDecoder; items: Relation; notes: Relation } {
  const decoder = new PgoutputDecoder();
  const items = decoder.decode(relationWire(ITEMS, "public", "items", ITEM_COLUMNS));
  const notes = decoder.decode(relationWire(NOTES, "public", "notes", [{ name: "id", typeOid: 23, key: true }, { name: "note", typeOid: 25 }], { identity: "f" }));
  if (items.tag !== "relation" || notes.tag !== "relation") throw new Error("relation expected");
  return { decoder, items: items.relation, notes: notes.relation };
}

function protocolError(fn: () => unknown): PgferryError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PgferryError);
    const e = error as PgferryError;
    expect(e.kind).toBe("protocol");
    expect(e.hint).toBeTruthy();
    return e;
  }
  throw new Error("expected a protocol error");
}

function as<T extends PgoutputMessage["tag"]>(message: PgoutputMessage, tag: T): Extract<PgoutputMessage, { tag: T }> {
  expect(message.tag).toBe(tag);
  return message as Extract<PgoutputMessage, { tag: T }>;
}

describe("PgoutputDecoder: transaction framing", () => {
  it("decodes Begin", () => {
    const payload = new PgoutputWire("B").u64(0x16b3748n).i64(774_306_000_123_456n).u32(0xfffffff0).build();
    expect(new PgoutputDecoder().decode(payload)).toEqual({ tag: "begin", finalLsn: 0x16b3748n, commitTimeMicros: 774_306_000_123_456n, xid: 0xfffffff0 });
  });

  it("decodes Commit", () => {
    const payload = new PgoutputWire("C").byte(0).u64(0x1_0000_0010n).u64(0x1_0000_0040n).i64(5_000_001n).build();
    expect(new PgoutputDecoder().decode(payload)).toEqual({ tag: "commit", flags: 0, commitLsn: 0x1_0000_0010n, endLsn: 0x1_0000_0040n, commitTimeMicros: 5_000_001n });
  });

  it("decodes Origin", () => {
    const payload = new PgoutputWire("O").u64(0xabcdefn).cstring("pgferry_main").build();
    expect(new PgoutputDecoder().decode(payload)).toEqual({ tag: "origin", lsn: 0xabcdefn, name: "pgferry_main" });
  });

  it("converts PostgreSQL-epoch microseconds to a Date", () => {
    expect(pgMicrosToDate(0n).toISOString()).toBe("2000-01-01T00:00:00.000Z");
    expect(pgMicrosToDate(86_400_000_000n + 1_999n).toISOString()).toBe("2000-01-02T00:00:00.001Z");
    expect(pgMicrosToDate(-1n).toISOString()).toBe("1999-12-31T23:59:59.999Z");
    expect(pgMicrosToDate(774_306_000_123_456n).toISOString()).toBe("2024-07-14T21:00:00.123Z");
  });
});

describe("PgoutputDecoder: Relation and Type", () => {
  it("decodes a Relation with key flags, type modifiers and replica identity", () => {
    const { items, notes } = primed();
    expect(items).toEqual({
      oid: ITEMS,
      namespace: "public",
      name: "items",
      replicaIdentity: "d",
      columns: [
        { name: "id", typeOid: 20, typeMod: -1, isKey: true },
        { name: "body", typeOid: 25, typeMod: -1, isKey: false },
        { name: "embedding", typeOid: 90000, typeMod: 1536, isKey: false },
        { name: "blob", typeOid: 17, typeMod: -1, isKey: false },
      ],
    });
    expect(notes.replicaIdentity).toBe("f");
  });

  it("maps an empty namespace to pg_catalog and keeps UTF-8 names", () => {
    const m = as(new PgoutputDecoder().decode(relationWire(1259, "", "größe_表", [], { identity: "n" })), "relation");
    expect(m.relation).toEqual({ oid: 1259, namespace: "pg_catalog", name: "größe_表", replicaIdentity: "n", columns: [] });
    expect(m.xid).toBeUndefined();
  });

  it("decodes Type, mapping an empty namespace to pg_catalog", () => {
    const decoder = new PgoutputDecoder();
    expect(decoder.decode(new PgoutputWire("Y").u32(90000).cstring("public").cstring("vector").build())).toEqual({
      tag: "type",
      xid: undefined,
      oid: 90000,
      namespace: "public",
      name: "vector",
    });
    expect(as(decoder.decode(new PgoutputWire("Y").u32(16).cstring("").cstring("bool").build()), "type").namespace).toBe("pg_catalog");
  });

  it("replaces a relation's description when it is sent again", () => {
    const { decoder } = primed();
    decoder.decode(relationWire(NOTES, "public", "notes", [{ name: "id", typeOid: 23, key: true }]));
    const m = as(decoder.decode(new PgoutputWire("I").u32(NOTES).byte("N").tuple(["1"]).build()), "insert");
    expect(m.relation.columns.map((c) => c.name)).toEqual(["id"]);
  });
});

describe("PgoutputDecoder: row changes", () => {
  it("decodes Insert with text, null, unchanged-TOAST and binary values, exactly", () => {
    const { decoder, items } = primed();
    const vector = `[${Array.from({ length: 1536 }, (_, i) => (i / 7).toFixed(9)).join(",")}]`;
    const payload = new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["9007199254740993", null, vector, Buffer.from([0, 1, 0xff])]).build();
    const m = as(decoder.decode(payload), "insert");
    expect(m.relation).toBe(items);
    expect(m.xid).toBeUndefined();
    expect(m.new).toEqual(["9007199254740993", null, vector, Buffer.from([0, 1, 0xff])]);
    expect(typeof m.new[0]).toBe("string");

    const toast = as(decoder.decode(new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["1", TOAST, "€ – 日本語 🚀", null]).build()), "insert");
    expect(toast.new[1]).toBe(UNCHANGED_TOAST);
    expect(toast.new[2]).toBe("€ – 日本語 🚀");
  });

  it("copies binary values out of the payload, which the caller may reuse", () => {
    const { decoder } = primed();
    const payload = new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["1", "", null, Buffer.from("abc")]).build();
    const m = as(decoder.decode(payload), "insert");
    payload.fill(0);
    expect(m.new).toEqual(["1", "", null, Buffer.from("abc")]);
  });

  it("decodes Update without an old tuple", () => {
    const { decoder, items } = primed();
    const m = decoder.decode(new PgoutputWire("U").u32(ITEMS).byte("N").tuple(["7", "b", TOAST, null]).build());
    expect(m).toEqual({ tag: "update", xid: undefined, relation: items, old: undefined, oldKind: undefined, new: ["7", "b", UNCHANGED_TOAST, null] });
  });

  it("decodes Update with an old key ('K')", () => {
    const { decoder } = primed();
    const m = as(decoder.decode(new PgoutputWire("U").u32(ITEMS).byte("K").tuple(["6", null, null, null]).byte("N").tuple(["7", "b", TOAST, null]).build()), "update");
    expect(m.oldKind).toBe("K");
    expect(m.old).toEqual(["6", null, null, null]);
    expect(m.new).toEqual(["7", "b", UNCHANGED_TOAST, null]);
  });

  it("decodes Update with an old row ('O')", () => {
    const { decoder, notes } = primed();
    const m = as(decoder.decode(new PgoutputWire("U").u32(NOTES).byte("O").tuple(["1", "before"]).byte("N").tuple(["1", "after"]).build()), "update");
    expect(m).toMatchObject({ relation: notes, oldKind: "O", old: ["1", "before"], new: ["1", "after"] });
  });

  it("decodes Delete with an old key ('K') and an old row ('O')", () => {
    const { decoder, items, notes } = primed();
    expect(decoder.decode(new PgoutputWire("D").u32(ITEMS).byte("K").tuple(["42", null, null, null]).build())).toEqual({
      tag: "delete",
      xid: undefined,
      relation: items,
      old: ["42", null, null, null],
      oldKind: "K",
    });
    const o = as(decoder.decode(new PgoutputWire("D").u32(NOTES).byte("O").tuple(["1", "gone"]).build()), "delete");
    expect(o).toMatchObject({ relation: notes, oldKind: "O", old: ["1", "gone"] });
  });

  it("decodes Truncate of two relations with its flags", () => {
    const { decoder, items, notes } = primed();
    expect(decoder.decode(new PgoutputWire("T").i32(2).byte(3).u32(ITEMS).u32(NOTES).build())).toEqual({
      tag: "truncate",
      xid: undefined,
      relations: [items, notes],
      cascade: true,
      restartIdentity: true,
    });
    const plain = as(decoder.decode(new PgoutputWire("T").i32(2).byte(0).u32(NOTES).u32(ITEMS).build()), "truncate");
    expect(plain).toMatchObject({ relations: [notes, items], cascade: false, restartIdentity: false });
    expect(as(decoder.decode(new PgoutputWire("T").i32(1).byte(2).u32(ITEMS).build()), "truncate")).toMatchObject({ cascade: false, restartIdentity: true });
  });
});

describe("PgoutputDecoder: logical decoding messages", () => {
  it("decodes a transactional message", () => {
    const content = Buffer.from(JSON.stringify({ chunk: 3, watermark: "low" }));
    const payload = new PgoutputWire("M").byte(1).u64(0x2000n).cstring("pgferry.resync").i32(content.length).raw(content).build();
    expect(new PgoutputDecoder().decode(payload)).toEqual({ tag: "message", xid: undefined, transactional: true, lsn: 0x2000n, prefix: "pgferry.resync", content });
  });

  it("decodes a non-transactional message with empty content", () => {
    const payload = new PgoutputWire("M").byte(0).u64(0x3000n).cstring("p").i32(0).build();
    const m = as(new PgoutputDecoder().decode(payload), "message");
    expect(m).toMatchObject({ transactional: false, lsn: 0x3000n, prefix: "p" });
    expect(m.content.length).toBe(0);
  });
});

describe("PgoutputDecoder: protocol v2 streaming", () => {
  it("reads xids on messages inside a stream only", () => {
    const { decoder, items, notes } = primed();
    expect(decoder.decode(new PgoutputWire("S").u32(900).byte(1).build())).toEqual({ tag: "stream_start", xid: 900, firstSegment: true });
    expect(decoder.inStream).toBe(true);

    expect(decoder.decode(new PgoutputWire("I").u32(900).u32(ITEMS).byte("N").tuple(["1", "a", null, null]).build())).toMatchObject({ tag: "insert", xid: 900, relation: items });
    expect(decoder.decode(new PgoutputWire("U").u32(901).u32(NOTES).byte("O").tuple(["1", "x"]).byte("N").tuple(["1", "y"]).build())).toMatchObject({
      tag: "update",
      xid: 901,
      oldKind: "O",
    });
    expect(decoder.decode(new PgoutputWire("D").u32(901).u32(ITEMS).byte("K").tuple(["1", null, null, null]).build())).toMatchObject({ tag: "delete", xid: 901 });
    expect(decoder.decode(new PgoutputWire("T").u32(900).i32(1).byte(1).u32(NOTES).build())).toMatchObject({ tag: "truncate", xid: 900, relations: [notes], cascade: true });
    expect(decoder.decode(new PgoutputWire("M").u32(900).byte(1).u64(5n).cstring("w").i32(1).raw(Buffer.from("x")).build())).toMatchObject({ tag: "message", xid: 900 });
    expect(decoder.decode(new PgoutputWire("Y").u32(900).u32(90000).cstring("public").cstring("vector").build())).toMatchObject({ tag: "type", xid: 900, oid: 90000 });

    expect(decoder.decode(new PgoutputWire("E").build())).toEqual({ tag: "stream_stop" });
    expect(decoder.inStream).toBe(false);
    // Outside the stream the xid prefix is gone again.
    expect(decoder.decode(new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["2", "b", null, null]).build())).toMatchObject({ tag: "insert", xid: undefined });

    expect(decoder.decode(new PgoutputWire("S").u32(900).byte(0).build())).toEqual({ tag: "stream_start", xid: 900, firstSegment: false });
    decoder.decode(new PgoutputWire("E").build());
    expect(decoder.decode(new PgoutputWire("c").u32(900).byte(0).u64(0x5000n).u64(0x5100n).i64(42n).build())).toEqual({
      tag: "stream_commit",
      xid: 900,
      flags: 0,
      commitLsn: 0x5000n,
      endLsn: 0x5100n,
      commitTimeMicros: 42n,
    });
  });

  it("decodes Stream Abort of a transaction and of a subtransaction", () => {
    const decoder = new PgoutputDecoder();
    expect(decoder.decode(new PgoutputWire("A").u32(900).u32(905).build())).toEqual({ tag: "stream_abort", xid: 900, subXid: 905 });
    expect(decoder.decode(new PgoutputWire("A").u32(900).u32(900).build())).toEqual({ tag: "stream_abort", xid: 900, subXid: 900 });
    // Protocol v4 appends abort LSN and time.
    expect(decoder.decode(new PgoutputWire("A").u32(901).u32(901).u64(0x10n).i64(1n).build())).toEqual({ tag: "stream_abort", xid: 901, subXid: 901 });
  });

  it("applies a Relation sent inside a stream to that stream now and to everyone after its commit", () => {
    const { decoder, items } = primed();
    decoder.decode(new PgoutputWire("S").u32(900).byte(1).build());
    decoder.decode(relationWire(ITEMS, "public", "items", [...ITEM_COLUMNS, { name: "extra", typeOid: 25 }], { xid: 900 }));
    expect(as(decoder.decode(new PgoutputWire("I").u32(900).u32(ITEMS).byte("N").tuple(["1", "a", null, null, "e"]).build()), "insert").relation.columns).toHaveLength(5);
    decoder.decode(new PgoutputWire("E").build());

    // A transaction committed between the stream's segments still has the old shape.
    expect(as(decoder.decode(new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["2", "b", null, null]).build()), "insert").relation).toBe(items);

    decoder.decode(new PgoutputWire("c").u32(900).byte(0).u64(1n).u64(2n).i64(3n).build());
    expect(as(decoder.decode(new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["3", "c", null, null, "e"]).build()), "insert").relation.columns).toHaveLength(5);
  });

  it("drops a Relation sent inside a stream that aborts", () => {
    const { decoder, items } = primed();
    decoder.decode(new PgoutputWire("S").u32(900).byte(1).build());
    decoder.decode(relationWire(ITEMS, "public", "items", [{ name: "id", typeOid: 20, key: true }], { xid: 900 }));
    decoder.decode(new PgoutputWire("E").build());
    decoder.decode(new PgoutputWire("A").u32(900).u32(900).build());
    expect(as(decoder.decode(new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["3", "c", null, null]).build()), "insert").relation).toBe(items);
  });
});

describe("PgoutputDecoder: malformed input", () => {
  it("rejects an unknown message byte", () => {
    const e = protocolError(() => new PgoutputDecoder().decode(new PgoutputWire("Z").u32(1).build()));
    expect(e.message).toMatch(/unknown message type 'Z' at byte offset 0/);
    expect(protocolError(() => new PgoutputDecoder().decode(Buffer.from([0x07]))).message).toMatch(/unknown message type 0x07/);
  });

  it("rejects an empty payload", () => {
    expect(protocolError(() => new PgoutputDecoder().decode(Buffer.alloc(0))).message).toMatch(/truncated.*offset 0/);
  });

  it("rejects a row change for a relation never described", () => {
    const { decoder } = primed();
    const e = protocolError(() => decoder.decode(new PgoutputWire("I").u32(99999).byte("N").tuple(["1"]).build()));
    expect(e.message).toMatch(/'I' message: relation oid 99999 was never described by a Relation message at byte offset 1/);
    expect(protocolError(() => decoder.decode(new PgoutputWire("T").i32(2).byte(0).u32(ITEMS).u32(4242).build())).message).toMatch(/oid 4242 .* offset 10/);
    // A relation sent in an aborted stream is not known outside it.
    decoder.decode(new PgoutputWire("S").u32(7).byte(1).build());
    decoder.decode(relationWire(555, "public", "tmp", [], { xid: 7 }));
    decoder.decode(new PgoutputWire("E").build());
    expect(protocolError(() => decoder.decode(new PgoutputWire("D").u32(555).byte("K").tuple([]).build())).message).toMatch(/oid 555/);
  });

  it("rejects truncated buffers, naming the offset", () => {
    expect(protocolError(() => new PgoutputDecoder().decode(new PgoutputWire("B").u64(1n).build())).message).toMatch(/'B' message: truncated: needs 8 more byte\(s\) but the 9-byte payload ends at byte offset 9/);
    const { decoder } = primed();
    const insert = new PgoutputWire("I").u32(ITEMS).byte("N").tuple(["1", "hello", null, null]).build();
    // Cut inside the text value "hello": its 4-byte length (at offset 15) promises 5 bytes after offset 19.
    expect(protocolError(() => decoder.decode(insert.subarray(0, insert.length - 5))).message).toMatch(/needs 5 more byte\(s\) .* offset 19/);
    expect(protocolError(() => decoder.decode(new PgoutputWire("O").u64(1n).raw(Buffer.from("no-nul")).build())).message).toMatch(/no terminating NUL at byte offset 9/);
    expect(protocolError(() => decoder.decode(new PgoutputWire("T").i32(3).byte(0).u32(ITEMS).build())).message).toMatch(/3 relation oids announced/);
    expect(protocolError(() => decoder.decode(new PgoutputWire("M").byte(1).u64(1n).cstring("p").i32(10).raw(Buffer.from("abc")).build())).message).toMatch(/truncated/);
  });

  it("rejects an unknown tuple value kind", () => {
    const { decoder } = primed();
    const payload = new PgoutputWire("I").u32(NOTES).byte("N").u16(2).byte("t").i32(1).raw(Buffer.from("1")).byte("x").build();
    expect(protocolError(() => decoder.decode(payload)).message).toMatch(/unknown tuple value kind 'x' in column 2 of public.notes at byte offset 14/);
  });

  it("rejects a missing new tuple and an unknown old-tuple tag", () => {
    const { decoder } = primed();
    expect(protocolError(() => decoder.decode(new PgoutputWire("I").u32(NOTES).byte("K").tuple(["1", "a"]).build())).message).toMatch(/expected new tuple 'N' but found 'K' at byte offset 5/);
    expect(protocolError(() => decoder.decode(new PgoutputWire("U").u32(NOTES).byte("X").tuple(["1", "a"]).build())).message).toMatch(/expected new tuple 'N' but found 'X' at byte offset 5/);
    expect(protocolError(() => decoder.decode(new PgoutputWire("U").u32(NOTES).byte("K").tuple(["1", null]).byte("O").tuple(["1", "a"]).build())).message).toMatch(
      /found 'O' at byte offset 15/,
    );
    expect(protocolError(() => decoder.decode(new PgoutputWire("D").u32(NOTES).byte("N").tuple(["1", "a"]).build())).message).toMatch(/expected old tuple 'K' or 'O' but found 'N' at byte offset 5/);
  });

  it("rejects a tuple whose column count disagrees with its Relation", () => {
    const { decoder } = primed();
    expect(protocolError(() => decoder.decode(new PgoutputWire("I").u32(NOTES).byte("N").tuple(["1"]).build())).message).toMatch(/tuple has 1 columns but relation public.notes .* has 2 at byte offset 6/);
  });

  it("rejects trailing bytes, negative lengths and an unknown replica identity", () => {
    const { decoder } = primed();
    expect(protocolError(() => decoder.decode(new PgoutputWire("C").byte(0).u64(1n).u64(2n).i64(3n).byte(0).build())).message).toMatch(/1 unexpected trailing byte\(s\) at byte offset 26/);
    expect(protocolError(() => decoder.decode(new PgoutputWire("I").u32(NOTES).byte("N").u16(2).byte("t").i32(-2).build())).message).toMatch(/negative length -2 at byte offset 9/);
    expect(protocolError(() => decoder.decode(relationWire(1, "public", "x", [], { identity: "z" }))).message).toMatch(/unknown replica identity 'z' at byte offset 14/);
  });

  it("rejects an inconsistent stream framing", () => {
    const decoder = new PgoutputDecoder();
    expect(protocolError(() => decoder.decode(new PgoutputWire("E").build())).message).toMatch(/Stream Stop without an open stream/);
    decoder.decode(new PgoutputWire("S").u32(1).byte(1).build());
    expect(protocolError(() => decoder.decode(new PgoutputWire("S").u32(2).byte(1).build())).message).toMatch(/Stream Start while the stream of xid 1 is still open/);
  });

  it("rejects protocol v3 two-phase messages clearly", () => {
    for (const type of ["b", "P", "K", "r", "p"]) {
      expect(protocolError(() => new PgoutputDecoder().decode(new PgoutputWire(type).u64(1n).build())).message).toMatch(/not supported \(protocol v3 two-phase\)/);
    }
  });
});
