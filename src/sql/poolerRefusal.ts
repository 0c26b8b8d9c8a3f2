/**
 * What the SQL layer knows about connection poolers without asking one: the errors that only a
 * pooler sends, never PostgreSQL itself, the host names that are poolers by construction, and the
 * message that says to connect directly instead (see pipeline/poolerCheck.ts for the live probing,
 * and how a pooler shows itself). Kept here, below the pools, the error policy and the preflight
 * check, which all ask: a pooler's refusal is no outage to wait out, but a URL to change.
 */
import { describeUrl } from "../redact.js";
import { PgferryError, type DatabaseSide } from "../errors.js";

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

/**
 * What in `error` says a pooler answered, as a finding, e.g. `PgBouncer refused the connection
 * with "unsupported startup parameter: options"`; undefined when nothing does. Pure: for errors
 * raised anywhere (a pool, the replication connection).
 */
export function poolerSignature(error: unknown, connection = "a connection"): string | undefined {
  const refusal = poolerRefusal(error);
  return refusal && `${refusal.pooler} refused ${connection} with "${refusal.text}"`;
}

interface HostHint {
  /** What the host name alone says, as a finding. */
  finding?: string;
  /** The direct connection to use instead, as the end of "point <side>.url at ...". */
  fix: string;
}

const SUPABASE_POOLER = /\.pooler\.supabase\.com$/i;
const SUPABASE_DB = /^db\.[a-z0-9]+\.supabase\.co$/i;
const NEON_POOLER = /^(ep-[a-z0-9-]+?)-pooler\.(.+\.neon\.tech)$/i;
const GENERIC_FIX =
  "the PostgreSQL server itself, not at PgBouncer, Supavisor or another pooler " +
  "(Supabase: the direct host db.<project>.supabase.co on port 5432, not *.pooler.supabase.com or port 6543; " +
  "Neon: the endpoint host without -pooler)";

/** Poolers recognisable by the URL alone, and the direct connection to use instead (pure). */
export function hostHint(url: string): HostHint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { fix: GENERIC_FIX };
  }
  const host = parsed.hostname;
  if (SUPABASE_POOLER.test(host)) {
    // Supavisor's user names carry the project (postgres.<project>); the direct host's do not.
    const [role, project] = decodeURIComponent(parsed.username).split(".", 2);
    const port = parsed.port || "5432";
    const mode = port === "6543" ? "transaction" : port === "5432" ? "session" : undefined;
    return {
      finding: `${host} is Supabase's Supavisor pooler${mode ? ` (port ${port}: ${mode} mode)` : ""}`,
      fix: `Supabase's direct connection: host db.${project || "<project>"}.supabase.co, port 5432, user ${role || "postgres"}`,
    };
  }
  if (SUPABASE_DB.test(host) && parsed.port === "6543") {
    return { finding: `port 6543 of ${host} is Supabase's transaction pooler`, fix: `port 5432 of ${host} (Supabase's direct connection)` };
  }
  const neon = NEON_POOLER.exec(host);
  if (neon) {
    return { finding: `${host} is a Neon pooled endpoint (PgBouncer)`, fix: `the endpoint without -pooler: ${neon[1]}.${neon[2]}` };
  }
  return { fix: GENERIC_FIX };
}

/** The problem text for a side found behind a pooler: what was found, why it matters, the fix. */
export function poolerProblem(side: DatabaseSide, url: string, findings: readonly string[]): string {
  const why =
    side === "source"
      ? "Logical replication and the exported snapshot need a direct connection to PostgreSQL"
      : "The target needs a direct, session-level connection to PostgreSQL (pgferry holds an advisory lock and session settings in its sessions for the whole run; a transaction pooler hands a session to other clients between transactions)";
  return `${side}.url: ${describeUrl(url)} goes through a connection pooler: ${findings.join("; ")}. ${why}: point ${side}.url at ${hostHint(url).fix}`;
}

/**
 * The PgferryError to raise instead of `error` when it is really a pooler's refusal (a pool or the
 * replication connection opened on `url`), so it says what preflight would; undefined otherwise.
 * Not transient: retrying through the same pooler fails the same way.
 */
export function poolerError(side: DatabaseSide, url: string, error: unknown): PgferryError | undefined {
  const found = poolerSignature(error);
  if (found === undefined) return undefined;
  return new PgferryError("preflight", poolerProblem(side, url, [found]), {
    cause: error,
    hint: `change ${side}.url to a direct connection to PostgreSQL`,
  });
}
