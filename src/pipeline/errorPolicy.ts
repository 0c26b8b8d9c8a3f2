/**
 * What the pipeline does about a failure, decided in one table (RULES: SQLSTATE, SQLSTATE class,
 * Node.js error code or message → class). The classes:
 *
 * - `outage`: a database is down, restarting, refusing connections, read-only or not resolvable (a
 *   restart, a failover, a maintenance window, DNS). Retried for as long as it lasts, with capped
 *   jittered backoff: a daemon that runs for weeks must outlive it. Reported as kind `connection`.
 * - `transient`: a failure that passes by itself (serialization failure, deadlock, a slot still held
 *   by a dying predecessor, a cancelled statement). Retried up to `apply.retry.maxAttempts` in a row.
 * - `rejected`: the target refused a change (a constraint, a type). `apply.onError` decides: `retry`
 *   (up to `apply.retry.maxAttempts` in a row, while the operator fixes the target) or `stop`.
 * - `privilege`: pgferry's role lacks a grant (42501). Stops, with the missing GRANT in the hint:
 *   retrying would fail the same way, and a start after the grant resumes from the checkpoint.
 * - `fatal`: everything else (config, a broken mapping, protocol, state, a bug). Stops. So does a
 *   write conflict under resolution `stop` (kind `conflict`): retrying would meet it again; the
 *   operator settles the row first.
 *
 * Nothing is ever skipped: whatever the class, the failed attempt rolls back and the changes stay in
 * the slot.
 */
import pg from "pg";
import { endpointOf, PgferryError, type ErrorKind } from "../errors.js";
import { poolerRefusal } from "../sql/poolerRefusal.js";
import { quoteIdent } from "../sql/quote.js";

export type FailureClass = "outage" | "transient" | "rejected" | "privilege" | "fatal";
export type Disposition = "retry" | "stop";

/** One row of the table: what to match in an error (or any error it wraps) and its class. */
export interface Rule {
  /** An exact `code`: a SQLSTATE ("57P03") or a Node.js error code ("ECONNREFUSED"). */
  code?: string;
  /** A SQLSTATE class: the first two characters of the code ("08": connection exception). */
  sqlstateClass?: string;
  /** With `code`: the system call too (ENOENT from `connect` is a missing unix socket, not a file). */
  syscall?: string;
  /** The error's message, for the failures that carry no code. */
  message?: RegExp;
  class: Exclude<FailureClass, "rejected" | "fatal">;
  reason: string;
}

/** First match wins; an error itself before the errors it wraps. */
export const RULES: readonly Rule[] = [
  { code: "42501", class: "privilege", reason: "insufficient privilege" },

  // The server is away, restarting or not accepting us: an outage, however long.
  { sqlstateClass: "08", class: "outage", reason: "connection exception" },
  { code: "57P01", class: "outage", reason: "admin shutdown (the server is stopping or restarting)" },
  { code: "57P02", class: "outage", reason: "crash shutdown (the server is restarting)" },
  { code: "57P03", class: "outage", reason: "cannot connect now (the server is starting, stopping or in recovery)" },
  { code: "57P05", class: "outage", reason: "idle session timeout (the server closed the connection)" },
  { code: "53300", class: "outage", reason: "too many connections" },
  { code: "25006", class: "outage", reason: "the server is read-only (a standby, or a failover in progress)" },
  { code: "ECONNREFUSED", class: "outage", reason: "connection refused (nothing listens: the server is down or restarting)" },
  { code: "ECONNRESET", class: "outage", reason: "connection reset" },
  { code: "ECONNABORTED", class: "outage", reason: "connection aborted" },
  { code: "EPIPE", class: "outage", reason: "connection closed (broken pipe)" },
  { code: "ETIMEDOUT", class: "outage", reason: "connection timed out" },
  { code: "EHOSTUNREACH", class: "outage", reason: "host unreachable" },
  { code: "EHOSTDOWN", class: "outage", reason: "host down" },
  { code: "ENETUNREACH", class: "outage", reason: "network unreachable" },
  { code: "ENETDOWN", class: "outage", reason: "network down" },
  { code: "EAI_AGAIN", class: "outage", reason: "DNS lookup failed (temporary)" },
  { code: "ENOTFOUND", class: "outage", reason: "DNS name not found (gone during a failover, or misspelled in the URL)" },
  { code: "ENOENT", syscall: "connect", class: "outage", reason: "no server socket (the server is down)" },

  // Failures that pass by themselves, bounded by apply.retry.maxAttempts.
  { code: "40001", class: "transient", reason: "serialization failure" },
  { code: "40P01", class: "transient", reason: "deadlock" },
  { code: "55006", class: "transient", reason: "object in use (replication slot still active)" },
  { code: "57014", class: "transient", reason: "statement cancelled (statement_timeout or pg_cancel_backend)" },
  { code: "58000", class: "transient", reason: "system error" },

  // Messages last (a code says more): the driver's own errors about a lost connection carry none.
  {
    message: /Connection terminated|terminating connection|server closed the connection|Connection ended|Client has encountered a connection error|the database system is (starting up|shutting down|in recovery|not yet accepting connections)|timeout exceeded when trying to connect/i,
    class: "outage",
    reason: "connection lost",
  },
];

export interface Classification {
  class: FailureClass;
  disposition: Disposition;
  /** Counted against `apply.retry.maxAttempts`; an outage never is. */
  bounded: boolean;
  /** What the failure is reported as: the log's `kind` and `pgferry_errors_total{kind}`. */
  kind: ErrorKind;
  reason: string;
  /** `privilege`: the grant that is missing, as an operator runs it. */
  hint?: string;
  /** `privilege`: which database refused, when known. */
  side?: Side;
  /**
   * `rejected` by a unique or exclusion constraint: batching may have reordered a unique value's
   * move between rows, so the next attempt applies what the failed one had received in source
   * order, change by change, before batching again.
   */
  orderedRetry?: boolean;
}

const CONFLICT_HINT = "inspect it with `pgferry conflicts`, fix the row on one side so both sides agree, then start pgferry again (it resumes from its checkpoint)";

/** Constraint violations that source order can resolve (a value moved from one row to another). */
const ORDER_SENSITIVE_SQLSTATES = new Set(["23505", "23P01"]);

export type Side = "source" | "target";

export interface ClassifyContext {
  /** pgferry's role on each side (the user of source.url / target.url), for privilege hints. */
  roles?: { source?: string; target?: string };
  /** The database the error came from, when the caller knows it (else the error's tagged endpoint, if any). */
  side?: Side | undefined;
}

export function classify(error: unknown, context: ClassifyContext = {}): Classification {
  if (error instanceof PgferryError) {
    switch (error.kind) {
      case "privilege":
        return verdict("privilege", "privilege", "insufficient privilege", { hint: error.hint });
      case "connection":
        return verdict("outage", "connection", matchRule(error.cause)?.rule.reason ?? error.message);
      case "apply": {
        // Refused by the target; some refusals are not about the change itself.
        const found = matchRule(error.cause);
        if (found?.rule.class === "privilege") return privilege(found.error, { ...context, side: "target" });
        if (found?.rule.class === "outage") return verdict("outage", "connection", found.rule.reason);
        if (found?.rule.class === "transient") return verdict("transient", "apply", found.rule.reason);
        const rejected = verdict("rejected", "apply", "the target rejected a change");
        if (ORDER_SENSITIVE_SQLSTATES.has(codeOf(error.cause) ?? "")) rejected.orderedRetry = true;
        return rejected;
      }
      case "conflict":
        // Not retried: the same batch meets the same row until an operator settles it.
        return verdict("fatal", "conflict", "write conflict (conflicts: stop)", { hint: error.hint ?? CONFLICT_HINT });
      case "mapping": {
        // The mapping's SQL runs on the source: a function or table it may not use there.
        const found = matchRule(error.cause);
        if (found?.rule.class === "privilege") return privilege(found.error, { ...context, side: "source" });
        return verdict("fatal", "mapping", "mapping error");
      }
      default:
        return verdict("fatal", error.kind, `${error.kind} error`);
    }
  }
  // A pooler's refusal (PgBouncer's 08P01 "unsupported startup parameter") looks like a connection
  // exception, but waiting does not cure it: the URL must point at PostgreSQL itself.
  const pooler = poolerRefusal(error);
  if (pooler) {
    return verdict("fatal", "preflight", `${pooler.pooler} refused the connection ("${pooler.text}")`, {
      hint: "the URL points at a connection pooler; pgferry needs a direct connection to PostgreSQL (replication, session settings and its lock live in one session)",
    });
  }
  const found = matchRule(error);
  if (found) {
    // Errors of the pipeline's pools name the database they came from (errors.ts tagEndpoint).
    if (found.rule.class === "privilege") return privilege(found.error, { ...context, side: context.side ?? endpointOf(error)?.side });
    return verdict(found.rule.class, "connection", found.rule.reason);
  }
  const code = codeOf(error);
  // A server's refusal outside of a wrapped apply error: in practice the target rejecting a change.
  return verdict("fatal", error instanceof pg.DatabaseError ? "apply" : "internal", code ? `SQLSTATE ${code}` : "unexpected error");
}

/** The privilege error pgferry reports (kind `privilege`, the missing grant as the hint), wrapping `error`. */
export function privilegeError(error: unknown, classification: Classification): PgferryError {
  if (error instanceof PgferryError && error.kind === "privilege") return error;
  const where = classification.side ? `the ${classification.side} database` : "a database";
  return new PgferryError("privilege", `pgferry's role lacks a privilege on ${where}: ${messageOf(error)}`, { cause: error, hint: classification.hint });
}

/** The user of a connection URL (pgferry's role on that side), if the URL names one. */
export function roleOf(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? decodeURIComponent(parsed.username) : parsed.searchParams.get("user");
    return user || undefined;
  } catch {
    return undefined;
  }
}

/** Exponential backoff with full jitter: spreads reconnects of many pipelines after a shared outage. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

// ---- privilege hints ----

/** What a 42501 message names → the grant that fixes it (`side` undefined: not known which database). */
const GRANTS: readonly { pattern: RegExp; grant: (name: string, role: string, side: Side | undefined) => string; side?: Side }[] = [
  { pattern: /permission denied for sequence (.+)$/, grant: (name, role) => `GRANT USAGE ON SEQUENCE ${name} TO ${role}` },
  {
    pattern: /permission denied for (?:table|relation|view|materialized view|foreign table) (.+)$/,
    grant: (name, role, side) =>
      side === "source"
        ? `GRANT SELECT ON TABLE ${name} TO ${role}`
        : side === "target"
          ? `GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE ${name} TO ${role}`
          : `GRANT SELECT ON TABLE ${name} TO ${role} (on the source) or GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE ${name} TO ${role} (on the target)`,
  },
  { pattern: /permission denied for schema (.+)$/, grant: (name, role) => `GRANT USAGE ON SCHEMA ${name} TO ${role}` },
  { pattern: /permission denied for database (.+)$/, grant: (name, role) => `GRANT CONNECT ON DATABASE ${name} TO ${role}` },
  { pattern: /permission denied for (?:function|procedure) (.+)$/, grant: (name, role) => `GRANT EXECUTE ON FUNCTION ${name} TO ${role}` },
  { pattern: /permission denied to set parameter "([^"]+)"/, grant: (name, role) => `GRANT SET ON PARAMETER ${name} TO ${role}` },
  { pattern: /replication (?:role|attribute)|REPLICATION attribute|replication slots|walsender|WAL sender/i, grant: (_name, role) => `ALTER ROLE ${role} REPLICATION`, side: "source" },
];

const OWNER = /must be owner of (.+)$/;

function privilege(error: unknown, context: ClassifyContext): Classification {
  const message = messageOf(error).trim();
  const known = GRANTS.find((g) => g.pattern.test(message));
  // Only the source has replication connections; otherwise the caller knows the side, or nobody does.
  const side = context.side ?? known?.side;
  const role = roleFor(side, context.roles);
  const where = side ? `the ${side} database` : `the database that refused it (${describeRoles(context.roles)})`;
  let fix: string;
  if (known) {
    fix = `run on ${where}: ${known.grant(identifier(known.pattern.exec(message)?.[1] ?? ""), role, side)}`;
  } else {
    const owner = OWNER.exec(message);
    fix = owner
      ? `only the owner of ${owner[1]} may do this on ${where}: do it as the owner (pgferry's role owns nothing it replicates)`
      : `grant ${role} the privilege the message names on ${where}`;
  }
  const hint = `${fix}; docs/privileges.sql lists every privilege pgferry needs; then start pgferry again (it resumes from its checkpoint)`;
  return verdict("privilege", "privilege", "insufficient privilege", { hint, side });
}

function roleFor(side: Side | undefined, roles: ClassifyContext["roles"]): string {
  const role = side ? roles?.[side] : roles?.source !== undefined && roles.source === roles.target ? roles.source : undefined;
  return role ? identifier(role) : "<role>";
}

function describeRoles(roles: ClassifyContext["roles"]): string {
  return `pgferry's role is ${roles?.source ?? "<role>"} on the source, ${roles?.target ?? "<role>"} on the target`;
}

/** A name as PostgreSQL printed it, quoted for SQL when it is not a plain lowercase identifier. */
function identifier(name: string): string {
  const trimmed = name.trim();
  return /^[a-z_][a-z0-9_$]*$/.test(trimmed) ? trimmed : quoteIdent(trimmed);
}

// ---- matching ----

function verdict(failure: FailureClass, kind: ErrorKind, reason: string, extra: { hint?: string | undefined; side?: Side | undefined } = {}): Classification {
  const disposition: Disposition = failure === "outage" || failure === "transient" || failure === "rejected" ? "retry" : "stop";
  const result: Classification = { class: failure, disposition, bounded: failure === "transient" || failure === "rejected", kind, reason };
  if (extra.hint !== undefined) result.hint = extra.hint;
  if (extra.side !== undefined) result.side = extra.side;
  return result;
}

/** The first rule that matches the error or, failing that, an error it wraps (`cause`, `errors`). */
function matchRule(error: unknown): { rule: Rule; error: unknown } | undefined {
  for (const candidate of chain(error)) {
    for (const rule of RULES) if (matches(rule, candidate)) return { rule, error: candidate };
  }
  return undefined;
}

function matches(rule: Rule, error: unknown): boolean {
  const code = codeOf(error);
  if (rule.code !== undefined) {
    if (code !== rule.code) return false;
    return rule.syscall === undefined || (error as { syscall?: unknown }).syscall === rule.syscall;
  }
  if (rule.sqlstateClass !== undefined) return code !== undefined && /^[0-9A-Z]{5}$/.test(code) && code.startsWith(rule.sqlstateClass);
  if (rule.message !== undefined) return rule.message.test(messageOf(error));
  return false;
}

function chain(error: unknown): unknown[] {
  const seen: unknown[] = [];
  const queue: unknown[] = [error];
  while (queue.length > 0 && seen.length < 8) {
    const next = queue.shift();
    if (next === undefined || next === null || seen.includes(next)) continue;
    seen.push(next);
    if (typeof next === "object") {
      const { cause, errors } = next as { cause?: unknown; errors?: unknown };
      if (cause !== undefined) queue.push(cause);
      if (Array.isArray(errors)) queue.push(...(errors as unknown[]));
    }
  }
  return seen;
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === "string" ? message : String(error);
}
