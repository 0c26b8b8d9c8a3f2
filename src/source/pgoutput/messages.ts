/**
 * Decoded pgoutput messages (protocol versions 1 and 2), a discriminated union on `tag`. Field
 * layouts follow PostgreSQL's "Logical Replication Message Formats". Values stay as the server sent
 * them: text as strings, binary as Buffers, never parsed into JS numbers or dates (docs/design.md, rule 3).
 */
import { PG_EPOCH_MS } from "../lsn.js";

/** A column the server left out because its TOASTed value did not change ('u'); never write it (docs/design.md, rule 4). */
export const UNCHANGED_TOAST: unique symbol = Symbol("pgoutput.unchanged-toast");

/** One column of a tuple: text ('t'), binary ('b', with `binary 'true'`), null ('n') or unchanged TOAST ('u'). */
export type TupleValue = string | Buffer | null | typeof UNCHANGED_TOAST;

export type ReplicaIdentity = "d" | "n" | "f" | "i";

export interface RelationColumn {
  name: string;
  typeOid: number;
  typeMod: number;
  /** Part of the replica identity, i.e. sent in a 'K' old tuple. */
  isKey: boolean;
}

export interface Relation {
  oid: number;
  /** `pg_catalog` where the wire sends an empty string. */
  namespace: string;
  name: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}

/** Set on messages inside a protocol v2 stream of an in-progress transaction (may be a subtransaction's xid). */
type StreamXid = { xid: number | undefined };

export interface BeginMessage {
  tag: "begin";
  finalLsn: bigint;
  commitTimeMicros: bigint;
  xid: number;
}

export interface CommitMessage {
  tag: "commit";
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTimeMicros: bigint;
}

export interface OriginMessage {
  tag: "origin";
  lsn: bigint;
  name: string;
}

export interface RelationMessage extends StreamXid {
  tag: "relation";
  relation: Relation;
}

export interface TypeMessage extends StreamXid {
  tag: "type";
  oid: number;
  namespace: string;
  name: string;
}

export interface InsertMessage extends StreamXid {
  tag: "insert";
  relation: Relation;
  new: TupleValue[];
}

export interface UpdateMessage extends StreamXid {
  tag: "update";
  relation: Relation;
  /** The old key ('K', when the key changed) or whole old row ('O', REPLICA IDENTITY FULL); else absent. */
  old: TupleValue[] | undefined;
  oldKind: "K" | "O" | undefined;
  new: TupleValue[];
}

export interface DeleteMessage extends StreamXid {
  tag: "delete";
  relation: Relation;
  old: TupleValue[];
  oldKind: "K" | "O";
}

export interface TruncateMessage extends StreamXid {
  tag: "truncate";
  relations: Relation[];
  cascade: boolean;
  restartIdentity: boolean;
}

/** A logical decoding message from `pg_logical_emit_message` (stream option `messages 'true'`). */
export interface LogicalMessage extends StreamXid {
  tag: "message";
  transactional: boolean;
  lsn: bigint;
  prefix: string;
  content: Buffer;
}

export interface StreamStartMessage {
  tag: "stream_start";
  xid: number;
  /** The first segment of this transaction's stream. */
  firstSegment: boolean;
}

export interface StreamStopMessage {
  tag: "stream_stop";
}

export interface StreamCommitMessage {
  tag: "stream_commit";
  xid: number;
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTimeMicros: bigint;
}

/** `subXid === xid` aborts the whole streamed transaction; otherwise only that subtransaction. */
export interface StreamAbortMessage {
  tag: "stream_abort";
  xid: number;
  subXid: number;
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage;

/** PostgreSQL-epoch microseconds (protocol timestamps) to a Date, flooring to the millisecond. */
export function pgMicrosToDate(micros: bigint): Date {
  let ms = micros / 1000n;
  if (micros < 0n && micros % 1000n !== 0n) ms -= 1n; // bigint division truncates toward zero
  return new Date(PG_EPOCH_MS + Number(ms));
}
