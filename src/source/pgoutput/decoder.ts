/**
 * source/pgoutput/ — the pgoutput protocol: message types, the decoder and the XLogData reader.
 *
 * Decodes pgoutput XLogData payloads (protocol v1 and v2) into `PgoutputMessage`s: a dispatch
 * table on the message byte over an offset cursor. The decoder holds the two pieces of stream state
 * the wire format depends on: the Relation cache (row changes name their table only by oid) and
 * whether a v2 stream of an in-progress transaction is open (then most messages carry an xid).
 * Anything malformed throws a protocol error naming the byte offset; nothing is guessed.
 */
import {
  UNCHANGED_TOAST,
  type PgoutputMessage,
  type Relation,
  type RelationColumn,
  type ReplicaIdentity,
  type TupleValue,
} from "./messages.js";
import { describeByte, PayloadReader } from "./reader.js";

interface DecoderState {
  relations: Map<number, Relation>;
  /**
   * Relations described inside a stream, per top-level xid. Like PostgreSQL's own apply worker, they
   * take effect only when that transaction commits: a transaction committed between two of its
   * segments still uses the old description (pgoutput does not resend it), and an abort drops them.
   */
  streamRelations: Map<number, Map<number, Relation>>;
  /** Top-level xid of the open stream (between Stream Start and Stream Stop). */
  streamXid: number | undefined;
}

type Handler = (r: PayloadReader, s: DecoderState) => PgoutputMessage;

const code = (c: string) => c.charCodeAt(0);
const N = code("N");
const K = code("K");
const O = code("O");
const IDENTITIES = new Set<string>(["d", "n", "f", "i"]);

/** Inside a stream, Relation/Type/row changes/Message start with the (sub)transaction's xid. */
function streamXid(r: PayloadReader, s: DecoderState): number | undefined {
  return s.streamXid === undefined ? undefined : r.u32();
}

/** pgoutput sends an empty namespace for pg_catalog, as PostgreSQL's own subscriber assumes. */
function namespace(r: PayloadReader): string {
  return r.cstring() || "pg_catalog";
}

function relationRef(r: PayloadReader, s: DecoderState): Relation {
  const at = r.offset;
  const oid = r.u32();
  const relation = (s.streamXid === undefined ? undefined : s.streamRelations.get(s.streamXid)?.get(oid)) ?? s.relations.get(oid);
  if (!relation) throw r.error(`relation oid ${oid} was never described by a Relation message`, at);
  return relation;
}

function tuple(r: PayloadReader, relation: Relation): TupleValue[] {
  const at = r.offset;
  const n = r.u16();
  // A column count that disagrees with the Relation means the cache is stale: decoding on would misplace values.
  if (n !== relation.columns.length) {
    throw r.error(`tuple has ${n} columns but relation ${relation.namespace}.${relation.name} (oid ${relation.oid}) has ${relation.columns.length}`, at);
  }
  const values = new Array<TupleValue>(n);
  for (let i = 0; i < n; i++) {
    const kindAt = r.offset;
    switch (r.u8()) {
      case 0x74: // 't'
        values[i] = r.text(r.length());
        break;
      case 0x6e: // 'n'
        values[i] = null;
        break;
      case 0x75: // 'u'
        values[i] = UNCHANGED_TOAST;
        break;
      case 0x62: // 'b'
        values[i] = r.bytes(r.length());
        break;
      default:
        throw r.error(`unknown tuple value kind ${describeByte(r.buf[kindAt] as number)} in column ${i + 1} of ${relation.namespace}.${relation.name}`, kindAt);
    }
  }
  return values;
}

function expectNewTuple(r: PayloadReader, byte: number, at: number): void {
  if (byte !== N) throw r.error(`expected new tuple 'N' but found ${describeByte(byte)}`, at);
}

function relationMessage(r: PayloadReader, s: DecoderState): PgoutputMessage {
  const xid = streamXid(r, s);
  const oid = r.u32();
  const ns = namespace(r);
  const name = r.cstring();
  const identityAt = r.offset;
  const identity = String.fromCharCode(r.u8());
  if (!IDENTITIES.has(identity)) throw r.error(`unknown replica identity ${describeByte(identity.charCodeAt(0))}`, identityAt);
  const count = r.u16();
  const columns = new Array<RelationColumn>(count);
  for (let i = 0; i < count; i++) {
    const flags = r.u8();
    columns[i] = { name: r.cstring(), typeOid: r.u32(), typeMod: r.i32(), isKey: (flags & 1) !== 0 };
  }
  const relation: Relation = { oid, namespace: ns, name, replicaIdentity: identity as ReplicaIdentity, columns };
  if (s.streamXid === undefined) {
    s.relations.set(oid, relation);
  } else {
    let pending = s.streamRelations.get(s.streamXid);
    if (!pending) s.streamRelations.set(s.streamXid, (pending = new Map<number, Relation>()));
    pending.set(oid, relation);
  }
  return { tag: "relation", relation, xid };
}

function unsupported(what: string): Handler {
  return (r) => {
    throw r.error(`${what} is not supported (protocol v3 two-phase); create the slot without two_phase`, 0);
  };
}

// Object literals evaluate in source order, so each handler reads its fields in wire order.
const HANDLERS: Record<number, Handler> = {
  [code("B")]: (r) => ({ tag: "begin", finalLsn: r.u64(), commitTimeMicros: r.i64(), xid: r.u32() }),
  [code("C")]: (r) => ({ tag: "commit", flags: r.u8(), commitLsn: r.u64(), endLsn: r.u64(), commitTimeMicros: r.i64() }),
  [code("O")]: (r) => ({ tag: "origin", lsn: r.u64(), name: r.cstring() }),
  [code("R")]: relationMessage,
  [code("Y")]: (r, s) => ({ tag: "type", xid: streamXid(r, s), oid: r.u32(), namespace: namespace(r), name: r.cstring() }),
  [code("I")]: (r, s) => {
    const xid = streamXid(r, s);
    const relation = relationRef(r, s);
    const at = r.offset;
    expectNewTuple(r, r.u8(), at);
    return { tag: "insert", xid, relation, new: tuple(r, relation) };
  },
  [code("U")]: (r, s) => {
    const xid = streamXid(r, s);
    const relation = relationRef(r, s);
    let at = r.offset;
    let byte = r.u8();
    let old: TupleValue[] | undefined;
    let oldKind: "K" | "O" | undefined;
    if (byte === K || byte === O) {
      oldKind = byte === K ? "K" : "O";
      old = tuple(r, relation);
      at = r.offset;
      byte = r.u8();
    }
    expectNewTuple(r, byte, at);
    return { tag: "update", xid, relation, old, oldKind, new: tuple(r, relation) };
  },
  [code("D")]: (r, s) => {
    const xid = streamXid(r, s);
    const relation = relationRef(r, s);
    const at = r.offset;
    const byte = r.u8();
    if (byte !== K && byte !== O) throw r.error(`expected old tuple 'K' or 'O' but found ${describeByte(byte)}`, at);
    return { tag: "delete", xid, relation, old: tuple(r, relation), oldKind: byte === K ? "K" : "O" };
  },
  [code("T")]: (r, s) => {
    const xid = streamXid(r, s);
    const countAt = r.offset;
    const count = r.length();
    const flags = r.u8();
    if (count * 4 > r.remaining) throw r.error(`truncated: ${count} relation oids announced, ${r.remaining} bytes left`, countAt);
    const relations = new Array<Relation>(count);
    for (let i = 0; i < count; i++) relations[i] = relationRef(r, s);
    return { tag: "truncate", xid, relations, cascade: (flags & 1) !== 0, restartIdentity: (flags & 2) !== 0 };
  },
  [code("M")]: (r, s) => ({
    tag: "message",
    xid: streamXid(r, s),
    transactional: (r.u8() & 1) !== 0,
    lsn: r.u64(),
    prefix: r.cstring(),
    content: r.bytes(r.length()),
  }),
  [code("S")]: (r, s) => {
    if (s.streamXid !== undefined) throw r.error(`Stream Start while the stream of xid ${s.streamXid} is still open`, 0);
    const xid = r.u32();
    const firstSegment = r.u8() === 1;
    s.streamXid = xid;
    return { tag: "stream_start", xid, firstSegment };
  },
  [code("E")]: (r, s) => {
    if (s.streamXid === undefined) throw r.error("Stream Stop without an open stream", 0);
    s.streamXid = undefined;
    return { tag: "stream_stop" };
  },
  [code("c")]: (r, s) => {
    const message = { tag: "stream_commit", xid: r.u32(), flags: r.u8(), commitLsn: r.u64(), endLsn: r.u64(), commitTimeMicros: r.i64() } as const;
    const pending = s.streamRelations.get(message.xid);
    if (pending) for (const [oid, relation] of pending) s.relations.set(oid, relation);
    s.streamRelations.delete(message.xid);
    return message;
  },
  [code("A")]: (r, s) => {
    const xid = r.u32();
    const subXid = r.u32();
    // Protocol v4 (parallel apply) appends the abort LSN and time; nothing here needs them.
    if (r.remaining === 16) r.offset += 16;
    // A subtransaction's abort keeps the descriptions: pgoutput tracks sent schemas per top-level xid.
    if (subXid === xid) s.streamRelations.delete(xid);
    return { tag: "stream_abort", xid, subXid };
  },
  [code("b")]: unsupported("Begin Prepare"),
  [code("P")]: unsupported("Prepare"),
  [code("K")]: unsupported("Commit Prepared"),
  [code("r")]: unsupported("Rollback Prepared"),
  [code("p")]: unsupported("Stream Prepare"),
};

export class PgoutputDecoder {
  private readonly reader = new PayloadReader();
  private readonly state: DecoderState = { relations: new Map(), streamRelations: new Map(), streamXid: undefined };

  /** Decodes one XLogData body (starting with the message type byte). Values are copied out of `payload`. */
  decode(payload: Buffer): PgoutputMessage {
    const r = this.reader;
    r.reset(payload);
    const type = r.u8();
    const handler = HANDLERS[type];
    if (!handler) throw r.error(`unknown message type ${describeByte(type)}`, 0);
    const message = handler(r, this.state);
    if (r.remaining !== 0) throw r.error(`${r.remaining} unexpected trailing byte(s)`);
    return message;
  }

  /** Whether a protocol v2 stream of an in-progress transaction is open (between Stream Start and Stop). */
  get inStream(): boolean {
    return this.state.streamXid !== undefined;
  }
}
