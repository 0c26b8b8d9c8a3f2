/**
 * Typed errors. Every error pgferry raises on purpose carries a `kind` (what went wrong, used by the
 * error policy and the `pgferry_errors_total{kind}` metric) and an operator `hint` (what to do).
 */
export type ErrorKind =
  | "config"            // the config file or environment is invalid
  | "preflight"         // a database is not ready for replication (wal_level, privileges, tables)
  | "connection"        // a database cannot be reached or dropped the connection (transient)
  | "protocol"          // a malformed or unexpected replication message
  | "apply"             // the target rejected a change (constraint violation, type error)
  | "mapping"           // the mapping cannot be compiled or evaluated
  | "state"             // pgferry's own state in the target is inconsistent
  | "internal";         // a bug

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
