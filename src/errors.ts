/**
 * Typed errors. Every error pgferry raises on purpose carries a `kind` (what went wrong, used by the
 * error policy and the `pgferry_errors_total{kind}` metric) and an operator `hint` (what to do).
 */
import { describeUrl } from "./redact.js";

export type ErrorKind =
  | "config"            // the config file or environment is invalid
  | "preflight"         // a database is not ready for replication (wal_level, privileges, tables)
  | "connection"        // a database cannot be reached or dropped the connection (transient)
  | "protocol"          // a malformed or unexpected replication message
  | "apply"             // the target rejected a change (constraint violation, type error)
  | "privilege"         // pgferry's role lacks a grant it needs at run time (SQLSTATE 42501)
  | "mapping"           // the mapping cannot be compiled or evaluated
  | "state"             // pgferry's own state in the target is inconsistent
  | "conflict"          // a change met a write of the target's own it had not seen, and conflicts are set to stop
  | "internal";         // a bug

/** Every kind, in the order of ErrorKind (for metrics that start each kind's counter at 0). */
export const ERROR_KINDS: readonly ErrorKind[] = ["config", "preflight", "connection", "protocol", "apply", "privilege", "mapping", "state", "conflict", "internal"];

export class PgferryError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;

  constructor(kind: ErrorKind, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PgferryError";
    this.kind = kind;
    this.hint = options.hint;
  }
}

/** A config file that failed validation: every problem, each prefixed by its key path. */
export class ConfigError extends PgferryError {
  readonly problems: readonly string[];

  constructor(file: string, problems: readonly string[]) {
    super("config", `invalid config ${file}:\n${problems.map((p) => `  - ${p}`).join("\n")}`, {
      hint: "fix the listed keys and start again",
    });
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Which of the two databases an error came from. */
export type DatabaseSide = "source" | "target";

/** Where an error came from: the side and its connection URL without secrets (describeUrl). */
export interface Endpoint {
  side: DatabaseSide;
  url: string;
}

// A symbol, not an enumerable property: log serializers and JSON copies never see it.
const ENDPOINT = Symbol.for("pgferry.endpoint");

/**
 * Marks `error` as coming from the `side` database at `url` (stored without its password or query
 * parameters). The first mark wins, so an error that travels through several layers keeps the
 * database it really came from. Returns `error` itself: identity, class and SQLSTATE are unchanged.
 */
export function tagEndpoint<T>(error: T, side: DatabaseSide, url: string): T {
  if (typeof error === "object" && error !== null && !Object.prototype.hasOwnProperty.call(error, ENDPOINT)) {
    try {
      Object.defineProperty(error, ENDPOINT, { value: { side, url: describeUrl(url) } satisfies Endpoint, enumerable: false });
    } catch {
      // a frozen object: left untagged
    }
  }
  return error;
}

/** The database `error` (or any error in its `cause` chain) came from, if one was marked. */
export function endpointOf(error: unknown): Endpoint | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 10 && typeof current === "object" && current !== null; depth += 1) {
    const endpoint = (current as { [ENDPOINT]?: Endpoint })[ENDPOINT];
    if (endpoint) return endpoint;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Runs `work` against one database; whatever it throws names that database (see tagEndpoint). */
export async function withEndpoint<T>(side: DatabaseSide, url: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw tagEndpoint(error, side, url);
  }
}
