/**
 * log/ — the logger.
 *
 * pino logging: JSON lines by default (what log shippers want), pretty on a terminal. Secrets are
 * redacted twice over: known secret keys by path, and connection-string passwords inside any message
 * or error text, so a driver error that echoes a URL cannot leak it.
 */
import { pino, type Logger, type LoggerOptions } from "pino";
import pretty from "pino-pretty";
import { redactSecrets } from "../redact.js";

export type { Logger } from "pino";

export interface LoggerSettings {
  level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  format: "json" | "pretty" | "auto";
  /** Where lines go; defaults to stdout. Tests pass a stream to capture them. */
  destination?: NodeJS.WritableStream;
  /** Whether the destination is a terminal (decides `auto`). */
  isTty?: boolean;
}

/** Keys whose values are secrets wherever they appear (up to two levels deep). */
const SECRET_KEYS = ["url", "connectionString", "password", "adminToken", "token", "authorization"];
const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

/**
 * Fields of a PostgreSQL error that quote row values (`Key (email)=(...) already exists`,
 * `COPY t, line 3, column c: "..."`): never logged. The SQLSTATE, table and constraint stay.
 */
const ROW_VALUE_FIELDS = ["detail", "where"] as const;

function serializeError(error: unknown): Record<string, unknown> {
  const serialized = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  if (serialized !== error) for (const key of ROW_VALUE_FIELDS) delete serialized[key]; // a copy, not the caller's object
  for (const key of ["message", "stack"] as const) {
    const value = serialized[key];
    if (typeof value === "string") serialized[key] = redactSecrets(value);
  }
  return serialized;
}

export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    base: { service: "pgferry" },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    serializers: { err: serializeError, error: serializeError },
    hooks: {
      logMethod(args, method) {
        const redacted = args.map((a) => (typeof a === "string" ? redactSecrets(a) : a)) as Parameters<typeof method>;
        method.apply(this, redacted);
      },
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const destination = settings.destination ?? process.stdout;
  const isTty = settings.isTty ?? Boolean((destination as NodeJS.WriteStream).isTTY);
  const usePretty = settings.format === "pretty" || (settings.format === "auto" && isTty);
  if (usePretty) {
    return pino(options, pretty({ destination, colorize: isTty, sync: true, ignore: "pid,hostname,service" }));
  }
  return pino(options, destination);
}

/** One child logger per module, so every line says where it came from. */
export function moduleLogger(root: Logger, module: string): Logger {
  return root.child({ module });
}
