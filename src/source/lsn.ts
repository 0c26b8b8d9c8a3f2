/**
 * source/ — the source side: the replication connection, the pgoutput decoder and the stream reader that pushes source changes into a sink. It never imports pipeline/.
 *
 * LSNs are bigint inside pgferry; the `X/Y` text form exists only at the edges (SQL, logs, JSON).
 */
import { PgferryError } from "../errors.js";

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): bigint {
  const match = LSN_TEXT.exec(text);
  if (!match) throw new PgferryError("protocol", `not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** PostgreSQL's epoch (2000-01-01) in Unix milliseconds: protocol timestamps count from it. */
export const PG_EPOCH_MS = 946_684_800_000;
