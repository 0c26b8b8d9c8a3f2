/** Field schemas shared by the config sections; each words its own problems. */
import { z } from "zod";
import { parseByteSize } from "./byteSize.js";
import { parseListenAddress } from "./listenAddress.js";

/** A quoted-or-not PostgreSQL identifier part as the mapping language accepts it. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]*$/;
const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/**
 * An integer within bounds. Decimal strings are accepted too, because a value taken from the
 * environment (`workers: ${PGFERRY_WORKERS:-4}`) is always a string.
 */
export function integer(min: number, max?: number) {
  const base = z.int().min(min);
  return z.preprocess(fromDecimalString, max === undefined ? base : base.max(max));
}

function fromDecimalString(value: unknown): unknown {
  return typeof value === "string" && /^-?\d{1,15}$/.test(value.trim()) ? Number(value) : value;
}

/** A byte size (`16MiB`, `512KiB`, `10MB` or a number of bytes), parsed to a number of bytes. */
export function byteSize() {
  return z.unknown().transform((value, ctx) => {
    const result = parseByteSize(value);
    if (result.ok) return result.bytes;
    ctx.issues.push({ code: "custom", message: result.reason, input: value });
    return z.NEVER;
  });
}

/** A `postgres://` or `postgresql://` URL. The problem never quotes it: it may hold a password. */
export function connectionUrl() {
  return z.string().refine(isPostgresUrl, { error: "not a PostgreSQL connection URL" });
}

function isPostgresUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === "postgres:" || url.protocol === "postgresql:";
  } catch {
    return false;
  }
}

/** Replication slot and publication names: what CREATE_REPLICATION_SLOT accepts unquoted. */
export function slotName() {
  return z.string().regex(SLOT_NAME, { error: "must be 1 to 63 lowercase letters, digits or underscores" });
}

/** A schema name pgferry creates (its state schema). */
export function identifier() {
  return z
    .string()
    .regex(IDENTIFIER, { error: "must be an identifier: letters, digits, _ or $, not starting with a digit" })
    .max(63, { error: "must be at most 63 characters" });
}

export function listenAddress() {
  return z.string().refine((text) => parseListenAddress(text) !== undefined, {
    error: "expected host:port (IPv6 in brackets) with a port from 1 to 65535",
  });
}
