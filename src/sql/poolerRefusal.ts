/**
 * Errors that only a connection pooler sends, never PostgreSQL itself (see pipeline/poolerCheck.ts
 * for how a pooler shows itself). Kept here, below the error policy and the preflight check, which
 * both ask: a pooler's refusal is no outage to wait out, but a URL to change.
 */

/** Error texts that only a pooler sends (PgBouncer's `disconnect_client` reasons, Supavisor's). */
const POOLER_ERRORS: readonly { pattern: RegExp; pooler: string }[] = [
  { pattern: /unsupported startup parameter/i, pooler: "PgBouncer" },
  { pattern: /unsupported options startup parameter/i, pooler: "PgBouncer" },
  { pattern: /pgbouncer cannot connect to server/i, pooler: "PgBouncer" },
  { pattern: /no more connections allowed \(max_client_conn\)/i, pooler: "PgBouncer" },
  { pattern: /client connections exceeded \(max_(db|user)_client_connections\)/i, pooler: "PgBouncer" },
  { pattern: /server login has been failing/i, pooler: "PgBouncer" },
  { pattern: /^query_wait_timeout$/i, pooler: "PgBouncer" },
  { pattern: /^client_login_timeout/i, pooler: "PgBouncer" },
  { pattern: /^no such database: /i, pooler: "PgBouncer" },
  { pattern: /^no such user\b/i, pooler: "PgBouncer" },
  { pattern: /^pooler is shutting down$/i, pooler: "PgBouncer" },
  { pattern: /Tenant or user not found/i, pooler: "Supavisor" },
  { pattern: /MaxClientsInSessionMode|Max client connections reached/i, pooler: "Supavisor" },
];

/**
 * The pooler and its words when `error` (or an error it wraps) is a pooler's refusal, not
 * PostgreSQL's; undefined otherwise. The innermost match is taken: the pooler's own words, without
 * the prefix of an error that wraps them.
 */
export function poolerRefusal(error: unknown): { pooler: string; text: string } | undefined {
  let found: { pooler: string; text: string } | undefined;
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 8; depth += 1) {
    const message = typeof e === "string" ? e : typeof (e as { message?: unknown }).message === "string" ? (e as { message: string }).message : "";
    for (const line of message.split("\n").map((l) => l.trim())) {
      const known = POOLER_ERRORS.find((p) => p.pattern.test(line));
      if (known) found = { pooler: known.pooler, text: line };
    }
    e = typeof e === "object" ? (e as { cause?: unknown }).cause : undefined;
  }
  return found;
}

