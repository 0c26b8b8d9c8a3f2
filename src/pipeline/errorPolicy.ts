/**
 * Which failures are worth retrying. Transient: the connection went away or the server is
 * restarting, a serialization failure or deadlock, a slot still held by a dying predecessor.
 * Everything else (a constraint the target enforces, bad data, a broken mapping) stops the pipeline
 * with the error: retrying would fail the same way, and skipping would lose data.
 */
import { PgferryError } from "../errors.js";

const TRANSIENT_SQLSTATES: Record<string, string> = {
  "40001": "serialization failure",
  "40P01": "deadlock",
  "53300": "too many connections",
  "55006": "object in use (replication slot still active)",
  "57P01": "admin shutdown",
  "57P02": "crash shutdown",
  "57P03": "cannot connect now (server starting or shutting down)",
  "58000": "system error",
};

const TRANSIENT_NODE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);
const TRANSIENT_MESSAGES = /Connection terminated|terminating connection|server closed the connection|the database system is (starting up|shutting down|in recovery)|Client has encountered a connection error|Connection ended/i;

export type Disposition = "retry" | "stop";

export function classify(error: unknown): { disposition: Disposition; reason: string } {
  if (error instanceof PgferryError) {
    if (error.kind === "connection") return { disposition: "retry", reason: error.message };
    // The target refused a batch (a constraint, a type): nothing is skipped; retrying lets the
    // operator fix the row while the pipeline waits (apply.onError: stop ends it instead).
    if (error.kind === "apply") return { disposition: "retry", reason: "the target rejected a change" };
    return { disposition: "stop", reason: `${error.kind} error` };
  }
  const e = error as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : undefined;
  if (code) {
    if (code.startsWith("08")) return { disposition: "retry", reason: `connection exception ${code}` };
    const known = TRANSIENT_SQLSTATES[code];
    if (known) return { disposition: "retry", reason: known };
    if (TRANSIENT_NODE_CODES.has(code)) return { disposition: "retry", reason: code };
  }
  const message = typeof e?.message === "string" ? e.message : String(error);
  if (TRANSIENT_MESSAGES.test(message)) return { disposition: "retry", reason: "connection lost" };
  return { disposition: "stop", reason: code ? `SQLSTATE ${code}` : "unexpected error" };
}

/** Exponential backoff with full jitter: spreads reconnects of many pipelines after a shared outage. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
