/**
 * pgoutput protocol payloads for unit tests, built byte by byte in wire order (the decoder's and the
 * stream reader's tests encode the messages a walsender would send).
 */

/** An unchanged TOAST column ('u') in a tuple a test encodes. */
export const TOAST = Symbol("unchanged-toast");
export type WireCell = string | null | typeof TOAST | Buffer;

export class PgoutputWire {
  private readonly parts: Buffer[] = [];

  constructor(type: string) {
    this.byte(type);
  }

  byte(c: string | number): this {
    this.parts.push(Buffer.from([typeof c === "number" ? c : c.charCodeAt(0)]));
    return this;
  }

  u16(n: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    return this.raw(b);
  }

  i32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return this.raw(b);
  }

  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return this.raw(b);
  }

  u64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    return this.raw(b);
  }

  i64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(n);
    return this.raw(b);
  }

  cstring(s: string): this {
    return this.raw(Buffer.from(s, "utf8")).raw(Buffer.from([0]));
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  /** A length-prefixed byte string (Int32 length, then the bytes). */
  bytes(b: Buffer): this {
    return this.i32(b.length).raw(b);
  }

  /** TupleData: strings as 't', null as 'n', TOAST as 'u', Buffers as 'b'. */
  tuple(values: readonly WireCell[]): this {
    this.u16(values.length);
    for (const v of values) {
      if (v === null) this.byte("n");
      else if (v === TOAST) this.byte("u");
      else if (typeof v === "string") this.byte("t").bytes(Buffer.from(v, "utf8"));
      else this.byte("b").bytes(v);
    }
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}
