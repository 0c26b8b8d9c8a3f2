/**
 * One error report for every command: which database failed (side and URL without secrets), the
 * message once, a hint chosen by SQLSTATE or cause, and a stack trace only for a bug. `pgferry run`
 * logs the same report as one line; the other commands print it on stderr.
 *
 *   pgferry plan: cannot reach the source database postgres://app@db:5432/shop: password authentication failed for user "app" (SQLSTATE 28P01)
 *   hint: the password in source.url is not the password of role app (...)
 */
import pg from "pg";
import type { Logger } from "pino";
import { pino } from "pino";
import { redactSecrets } from "../redact.js";
import { endpointOf, PgferryError, type Endpoint } from "../errors.js";
import { classify } from "../pipeline/errorPolicy.js";

export interface ErrorReport {
  /** What failed and where, e.g. `cannot reach the source database postgres://u@h:5432/db`. */
  headline: string;
  /** The error's own message, once, without secrets (several lines for a list of config problems). */
  message: string;
  /** The PgferryError kind, or `connection` / `database` / `internal` for other errors. */
  kind: string;
  endpoint?: Endpoint;
  /** SQLSTATE or Node.js error code. */
  code?: string;
  hint?: string;
  /** Only for a bug (a TypeError and the like, or kind `internal`): where it happened. */
  stack?: string;
}

/** The errors `error` wraps, itself first (`cause`, then AggregateError's `errors`), cycle-safe. */
function chain(error: unknown): unknown[] {
  const seen: unknown[] = [];
  for (let current = error; typeof current === "object" && current !== null && !seen.includes(current) && seen.length < 10; current = (current as { cause?: unknown }).cause) {
    seen.push(current);
  }
  return seen.length > 0 ? seen : [error];
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code !== "" ? code : undefined;
}

/** An error's message; AggregateError (Node's happy-eyeballs connect to `localhost`) has an empty one. */
function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.message !== "") return error.message;
  const inner = (error as { errors?: unknown }).errors;
  if (Array.isArray(inner) && inner.length > 0) return [...new Set(inner.map((e) => messageOf(e)))].join("; ");
  return codeOf(error) ?? error.name;
}

const SQLSTATE = /^[0-9A-Z]{5}$/;
const NETWORK_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ECONNRESET", "ECONNABORTED", "EPIPE"]);
const TLS_CODES = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|CERT_UNTRUSTED|CERT_REJECTED|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_.*|EPROTO)$/;
const NO_SSL = /server does not support SSL connections/i;
const NO_PASSWORD = /client password must be a string|SASL: .*password|no password supplied/i;
const CONNECT_MESSAGES = /server does not support SSL|certificate|client password must be a string|SASL|connection timeout|timeout expired|timeout exceeded when trying to connect/i;

/** An error of establishing a session (authentication, DNS, TCP, TLS, an unknown database). */
function isConnectError(error: unknown): boolean {
  const code = codeOf(error);
  if (code !== undefined) {
    if (SQLSTATE.test(code)) return code.startsWith("28") || code.startsWith("08") || code === "3D000" || code === "53300" || code === "57P03";
    if (NETWORK_CODES.has(code) || TLS_CODES.test(code)) return true;
    if (code === "ENOENT" && (error as { syscall?: unknown }).syscall === "connect") return true;
  }
  return CONNECT_MESSAGES.test(messageOf(error));
}

/** A programming error: worth its stack trace. Database, network and pgferry's own errors are not. */
export function isBug(error: unknown): boolean {
  if (error instanceof PgferryError) return error.kind === "internal";
  if (!(error instanceof Error)) return true;
  const code = codeOf(error);
  if (error instanceof pg.DatabaseError || (code !== undefined && (NETWORK_CODES.has(code) || TLS_CODES.test(code)))) return false;
  return error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError || error instanceof EvalError || error instanceof URIError;
}

interface UrlParts { user?: string; host?: string; port?: string; database?: string }

function urlParts(url: string | undefined): UrlParts {
  if (url === undefined) return {};
  try {
    const parsed = new URL(url);
    return {
      user: parsed.username ? decodeURIComponent(parsed.username) : undefined,
      host: parsed.hostname || undefined,
      port: parsed.port || "5432",
      database: parsed.pathname.length > 1 ? decodeURIComponent(parsed.pathname.slice(1)) : undefined,
    };
  } catch {
    return {};
  }
}

/** `the password in source.url`, or `the connection URL` when the side is not known. */
function urlKey(endpoint: Endpoint | undefined): string {
  return endpoint ? `${endpoint.side}.url` : "the connection URL";
}

/** The operator's next step for a database, network or TLS error; undefined when nothing specific fits. */
export function hintFor(error: unknown, endpoint?: Endpoint): string | undefined {
  const code = codeOf(error);
  const message = messageOf(error);
  const key = urlKey(endpoint);
  const { user, host, port, database } = urlParts(endpoint?.url);
  const role = user ?? (/user "([^"]+)"/.exec(message)?.[1]) ?? "<role>";
  const address = host ? `${host}:${port ?? "5432"}` : "that address";

  if (NO_SSL.test(message)) {
    return `the server runs without TLS (ssl = off) but ${key} asks for it; node-pg treats sslmode=prefer and require like verify-full and never falls back to plain text: remove sslmode from ${key} (or set sslmode=disable), or turn ssl on in the server`;
  }
  if (/pg_hba\.conf/.test(message)) {
    if (/no encryption/.test(message)) {
      return `the server accepts this client only over TLS (hostssl lines in pg_hba.conf): add sslmode=verify-full&sslrootcert=/path/to/ca.pem to ${key} (sslmode=no-verify encrypts without checking the certificate)`;
    }
    if (/SSL (encryption|on)|GSS encryption/.test(message)) {
      return `the server accepts this client only without TLS (hostnossl lines in pg_hba.conf): set sslmode=disable in ${key}, or ask its administrator for a hostssl line`;
    }
    return `the server's pg_hba.conf has no line that lets this host, role and database in: ask its administrator to add one (docs/privileges.sql shows a hostssl line for pgferry's roles)`;
  }
  if (NO_PASSWORD.test(message)) {
    return `the server asks role ${role} for a password and ${key} has none: add it after the user name (user:password@host), taken from an environment variable with \${VAR}`;
  }
  if ((code !== undefined && TLS_CODES.test(code)) || /certificate/i.test(message)) {
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
      return `the server's certificate does not name the host in ${key}: connect by a name the certificate lists, or use sslmode=no-verify to encrypt without checking it`;
    }
    return `node-pg checks the server certificate for every sslmode but no-verify (prefer and require included): give the CA that signed it with sslrootcert=/path/to/ca.pem in ${key}, or use sslmode=no-verify to encrypt without checking it`;
  }
  switch (code) {
    case "28P01":
      return `the password in ${key} is not the password of role ${role}: check it (and the environment variable it comes from)`;
    case "3D000":
      return `there is no database ${database ?? /database "([^"]+)"/.exec(message)?.[1] ?? "of that name"} on ${address}: check the database name at the end of ${key} (psql -l lists them)`;
    case "28000":
      if (/role .* does not exist/.test(message)) return `there is no role ${role} on ${address}: check the user name in ${key}, or create the role (docs/privileges.sql creates pgferry_source and pgferry_target)`;
      return `the server refused role ${role}: check the user name in ${key} and that the role may log in`;
    case "42501": {
      const hint = classify(error, endpoint ? { side: endpoint.side, roles: { [endpoint.side]: user } } : {}).hint;
      return hint?.replace(/; then start pgferry again \(it resumes from its checkpoint\)$/, "") ?? `grant role ${role} what docs/privileges.sql grants`;
    }
    case "53300":
      return `the server has no free connection slot: raise max_connections, or lower snapshot.workers`;
    case "57P03":
      return `the server is starting, stopping or in recovery: try again in a moment`;
    case "ECONNREFUSED":
      return `nothing accepts connections at ${address}: check the host and port in ${key}, and that PostgreSQL is running and listens there (listen_addresses, port)`;
    case "ENOTFOUND":
      return `the host name ${host ?? "(see the message)"} in ${key} does not resolve: check its spelling and the DNS`;
    case "EAI_AGAIN":
      return `the host name ${host ?? "(see the message)"} in ${key} could not be resolved (a temporary DNS failure): check the network and DNS, then try again`;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
    case "ENETUNREACH":
    case "ENETDOWN":
      return `no answer from ${address}: check the host in ${key}, the network path and firewalls`;
    case "ENOENT":
      return `no server socket at the path in ${key}: check the host (a directory) and port, and that PostgreSQL is running`;
    default:
      break;
  }
  if (/connection timeout|timeout expired|timeout exceeded when trying to connect/i.test(message)) {
    return `no answer from ${address} in time: check the host and port in ${key}, the network path and firewalls`;
  }
  return undefined;
}

/** Builds the report for `error`: see the module comment. */
export function describeError(error: unknown): ErrorReport {
  const errors = chain(error);
  const top = errors[0];
  const root = errors[errors.length - 1];
  const endpoint = endpointOf(error);
  const bug = isBug(top);
  const topMessage = messageOf(top);
  const rootMessage = messageOf(root);
  // A PgferryError that only says "cannot reach the source database <url>: <driver message>": the
  // driver's error is the one to report (with the wrapper's kind), so nothing is said twice.
  const wrapper = top instanceof PgferryError && root !== top && endpoint !== undefined && topMessage.endsWith(rootMessage)
    && (topMessage.includes(endpoint.url) || topMessage.includes(`the ${endpoint.side} database`));
  const subject = wrapper || !(top instanceof PgferryError) ? root : top;
  const kind = top instanceof PgferryError ? top.kind : bug ? "internal" : isConnectError(root) ? "connection" : "database";
  let message = wrapper ? rootMessage : topMessage;
  if (bug && !(top instanceof PgferryError)) message = `${(top as Error | undefined)?.name ?? "Error"}: ${message}`;
  const code = codeOf(subject) ?? codeOf(root);
  if (code !== undefined && !bug && !message.includes(code)) message += SQLSTATE.test(code) ? ` (SQLSTATE ${code})` : ` (${code})`;

  let headline: string;
  if (endpoint) {
    const where = `the ${endpoint.side} database ${endpoint.url}`;
    if (isConnectError(root)) headline = `cannot reach ${where}`;
    else headline = top instanceof PgferryError ? `${kind} error on ${where}` : `error on ${where}`;
  } else {
    headline = top instanceof PgferryError || bug ? `${kind} error` : "error";
  }

  const ownHint = top instanceof PgferryError ? top.hint : undefined;
  const specific = bug ? undefined : hintFor(subject, endpoint) ?? (subject !== root ? hintFor(root, endpoint) : undefined);
  // What the database's own error says (a SQLSTATE, a cause) is more precise than a wrapper's hint.
  const hint = specific ?? ownHint;

  const report: ErrorReport = { headline, message: redactSecrets(message), kind };
  if (endpoint) report.endpoint = endpoint;
  if (code !== undefined) report.code = code;
  if (hint !== undefined) report.hint = redactSecrets(hint);
  if (bug && top instanceof Error && top.stack) {
    // The frames only: the stack's first line repeats the message.
    const lines = top.stack.split("\n");
    const first = lines.findIndex((line) => /^\s+at /.test(line));
    report.stack = redactSecrets((first < 0 ? lines : lines.slice(first)).join("\n"));
  }
  return report;
}

/** The report as a command prints it on stderr: `pgferry <command>: <headline>: <message>`, hint, stack. */
export function formatErrorReport(command: string, report: ErrorReport): string {
  const lines = [`pgferry ${command}: ${report.headline}: ${report.message}`];
  if (report.hint) lines.push(`hint: ${report.hint}`);
  if (report.stack) lines.push(report.stack);
  return `${lines.join("\n")}\n`;
}

/** The report as log fields (`pgferry run`): no `url` key (the logger redacts those), no stack unless a bug. */
export function reportLogFields(report: ErrorReport, error: unknown): Record<string, unknown> {
  const fields: Record<string, unknown> = { kind: report.kind };
  if (report.endpoint) {
    fields.side = report.endpoint.side;
    fields.database = report.endpoint.url;
  }
  if (report.code) fields.code = report.code;
  // What identifies a refused change (never its values: `detail` and `where` quote rows).
  for (const e of chain(error)) {
    for (const key of ["constraint", "table", "schema", "column"] as const) {
      const value = (e as Record<string, unknown> | null)?.[key];
      if (typeof value === "string" && fields[key] === undefined) fields[key] = value;
    }
  }
  if (report.hint) fields.hint = report.hint;
  if (report.stack) fields.err = error;
  return fields;
}

/**
 * A logger whose `err` field drops the stack trace of expected errors (database, network and
 * pgferry's own) and states each wrapped message once; a bug keeps its stack.
 */
export function withQuietErrors(log: Logger): Logger {
  const parents = (log as unknown as Record<symbol, Record<string, ((value: unknown) => unknown) | undefined> | undefined>)[pino.symbols.serializersSym];
  const parent: (value: unknown) => unknown = parents?.err ?? ((value) => pino.stdSerializers.err(value as Error));
  const err = (error: unknown): unknown => {
    const serialized = parent(error);
    if (isBug(error) || typeof serialized !== "object" || serialized === null) return serialized;
    const out = serialized as Record<string, unknown>;
    delete out.stack;
    let message = "";
    for (const e of chain(error)) {
      const text = messageOf(e);
      if (!message.includes(text)) message = message === "" ? text : `${message}: ${text}`;
    }
    out.message = redactSecrets(message);
    return out;
  };
  return log.child({}, { serializers: { err } });
}

/**
 * node-pg (pg-connection-string) warns once per process, in nine lines, that sslmode=prefer, require
 * and verify-ca are treated as verify-full. Replaced by one line that says what that means here.
 */
export function translatePgWarnings(stderr: NodeJS.WritableStream): void {
  const flag = Symbol.for("pgferry.pgWarningsTranslated");
  const proc = process as unknown as Record<symbol, unknown>;
  if (proc[flag]) return;
  proc[flag] = true;
  const original = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const text = warning instanceof Error ? warning.message : String(warning);
    if (text.startsWith("SECURITY WARNING: The SSL modes")) {
      const mode = /sslmode=(prefer|require|verify-ca)'/.exec(text)?.[1] ?? "prefer, require or verify-ca";
      stderr.write(`pgferry: note: sslmode=${mode} is treated as verify-full by node-pg: the server certificate is checked (sslrootcert=/path/to/ca.pem names its CA; sslmode=no-verify encrypts without checking it)\n`);
      return;
    }
    original(warning, ...rest);
  });
}
