/**
 * A bounds-checked offset cursor over one pgoutput payload. Every read checks the end first, so a
 * truncated message fails with its offset instead of Node's generic RangeError (or, for
 * `toString`/`subarray`, silently shorter data).
 */
import { PgferryError } from "../../errors.js";

const CORRUPT_HINT =
  "the replication stream is malformed or uses an unsupported pgoutput version; nothing from it was acknowledged, so a restart re-reads it from the slot";

export class PayloadReader {
  buf: Buffer = Buffer.alloc(0);
  offset = 0;
  /** The message type byte, for error messages. */
  private tag = "(empty)";
  /** Whether `buf` is a copy of its own (values may then be views into it), not the caller's buffer. */
  private owned = false;

  reset(buf: Buffer): void {
    this.buf = buf;
    this.owned = false;
    this.offset = 0;
    this.tag = buf.length > 0 ? describeByte(buf[0] as number) : "(empty)";
  }

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  /** A protocol error that names the message type and the byte offset. */
  error(message: string, offset = this.offset): PgferryError {
    return new PgferryError("protocol", `pgoutput ${this.tag} message: ${message} at byte offset ${offset}`, { hint: CORRUPT_HINT });
  }

  private need(bytes: number): number {
    const at = this.offset;
    if (at + bytes > this.buf.length) {
      throw this.error(`truncated: needs ${bytes} more byte(s) but the ${this.buf.length}-byte payload ends`);
    }
    this.offset = at + bytes;
    return at;
  }

  u8(): number {
    return this.buf[this.need(1)] as number;
  }

  u16(): number {
    return this.buf.readUInt16BE(this.need(2));
  }

  i32(): number {
    return this.buf.readInt32BE(this.need(4));
  }

  /** Oids and TransactionIds are unsigned 32-bit. */
  u32(): number {
    return this.buf.readUInt32BE(this.need(4));
  }

  /** XLogRecPtr. */
  u64(): bigint {
    return this.buf.readBigUInt64BE(this.need(8));
  }

  /** TimestampTz (signed microseconds since 2000-01-01). */
  i64(): bigint {
    return this.buf.readBigInt64BE(this.need(8));
  }

  /** A NUL-terminated string. */
  cstring(): string {
    const start = this.offset;
    const end = this.buf.indexOf(0, start);
    if (end < 0) throw this.error("truncated: string has no terminating NUL", start);
    this.offset = end + 1;
    return this.buf.toString("utf8", start, end);
  }

  /** `length` bytes decoded as UTF-8: the walsender converts text to client_encoding, which `pg` sets to UTF8. */
  text(length: number): string {
    const start = this.need(length);
    return this.buf.toString("utf8", start, start + length);
  }

  /**
   * `length` bytes, not shared with the caller, who may reuse the payload buffer after decode
   * returns: the first call copies the whole payload once, and every value is a view into that copy
   * (a row's binary values are one allocation, not one each; they live and die together).
   */
  bytes(length: number): Buffer {
    const start = this.need(length);
    if (!this.owned) {
      this.buf = Buffer.from(this.buf);
      this.owned = true;
    }
    return this.buf.subarray(start, start + length);
  }

  /** An Int32 length prefix; a negative one is corrupt, not "read backwards". */
  length(): number {
    const at = this.offset;
    const n = this.i32();
    if (n < 0) throw this.error(`negative length ${n}`, at);
    return n;
  }
}

/** A protocol byte for error messages: `'I'` when printable, else `0x07`. */
export function describeByte(byte: number): string {
  return byte >= 0x21 && byte <= 0x7e ? `'${String.fromCharCode(byte)}'` : `0x${byte.toString(16).padStart(2, "0")}`;
}
