/**
 * The SQL layer: how pgferry opens a session on either database. Every session (walsender,
 * snapshot workers, evaluator, TOAST re-reads, resync, verify, apply, status) pins the settings
 * that make PostgreSQL's text forms exact and unambiguous, the way walreceiver and pg_dump do, so a
 * database-level `ALTER DATABASE ... SET DateStyle = 'SQL, DMY'` on one side cannot make the other
 * side read a different value (docs/exactness.md).
 */
import pg from "pg";

/**
 * Pinned per session, in the startup packet, so they hold before the first query (the walsender
 * prints pgoutput's text values with them) and override database- and role-level settings.
 * `row_security = off` makes a table whose row-level security applies to pgferry's role raise an
 * error instead of silently returning (or accepting) fewer rows; preflight names such tables first.
 */
export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  DateStyle: "ISO",
  IntervalStyle: "postgres",
  extra_float_digits: "3",
  bytea_output: "hex",
  TimeZone: "UTC",
  client_encoding: "UTF8",
  row_security: "off",
  // money's text form follows lc_monetary; in C both sides print and read the stored amount alike.
  lc_monetary: "C",
  // Literals pgferry writes (sql/quote.ts) double quotes and leave backslashes alone.
  standard_conforming_strings: "on",
};

/** libpq `options` escaping: a backslash before spaces and backslashes. */
function escapeOption(value: string): string {
  return value.replace(/[\\ ]/g, (c) => `\\${c}`);
}

/** The startup `options` value: the URL's own options first, pgferry's pins after them (later wins). */
export function startupOptions(urlOptions?: string): string {
  const pins = Object.entries(PINNED_SETTINGS).map(([name, value]) => `-c ${name}=${escapeOption(value)}`);
  return [urlOptions?.trim(), ...pins].filter((part) => part).join(" ");
}

/** Every value as the text PostgreSQL prints, exactly as COPY would (no lossy JavaScript parsing). */
export const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export interface SessionOptions {
  applicationName: string;
  /** Values stay PostgreSQL's text (the source paths that pass values through). */
  rawText?: boolean;
  /** A walsender session (`replication=database`). */
  replication?: boolean;
  /** Extra pg client settings (timeouts). */
  extra?: Partial<pg.ClientConfig>;
}

/**
 * The client config for one session. A connection string's own `options` would override the config
 * (node-pg lets the URL win), so it is taken out of the URL and merged in front of the pins.
 */
export function sessionConfig(url: string, options: SessionOptions): pg.ClientConfig {
  let connectionString = url;
  let urlOptions: string | undefined;
  try {
    const parsed = new URL(url);
    urlOptions = parsed.searchParams.get("options") ?? undefined;
    if (urlOptions !== undefined) {
      parsed.searchParams.delete("options");
      connectionString = parsed.toString();
    }
  } catch {
    // Not a URL (a libpq keyword string): node-pg parses it; its options, if any, win over the pins,
    // and preflight's settings check reports that.
  }
  const config: pg.ClientConfig & { replication?: string } = {
    ...options.extra,
    connectionString,
    application_name: options.applicationName,
    options: startupOptions(urlOptions),
  };
  if (options.rawText) config.types = RAW_TEXT;
  if (options.replication) config.replication = "database";
  return config;
}

/**
 * A pool of pinned sessions. An idle client's error (a server restart, a reset) is left to the next
 * query: unheard, the pool's 'error' event would end the process.
 */
export function openPool(url: string, options: SessionOptions & { max: number }): pg.Pool {
  const pool = new pg.Pool({ ...sessionConfig(url, options), max: options.max });
  pool.on("error", () => undefined);
  return pool;
}

/**
 * One dedicated pinned session, connected. A dropped connection surfaces as the next query's
 * rejection; an unhandled 'error' event would end the process.
 */
export async function openClient(url: string, options: SessionOptions): Promise<pg.Client> {
  const client = new pg.Client(sessionConfig(url, options));
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

/** synchronous_commit values an apply session may have (config `apply.synchronousCommit`). */
export type SynchronousCommit = "off" | "local" | "remote_write" | "on" | "remote_apply";

/**
 * A target session that applies replicated rows: the target's own triggers and FK checks do not fire
 * for them (as in native logical replication), and its commits are as durable as `synchronousCommit`
 * says, whatever the database's default: `on` (the default here) makes COMMIT durable before it
 * returns; with `off` whoever acknowledges the source must first see the target's WAL flush pass the
 * commit (pipeline/flushedCommits.ts), or a crash could lose changes the source has already released.
 */
export async function prepareApplySession(client: pg.ClientBase, synchronousCommit: SynchronousCommit = "on"): Promise<void> {
  await client.query("SET session_replication_role = replica");
  await client.query(`SET synchronous_commit = ${synchronousCommit}`);
}

/** Which pinned settings a session does not have (a pooler that drops startup options, for one). */
export async function unpinnedSettings(db: pg.Pool | pg.ClientBase): Promise<string[]> {
  const names = Object.keys(PINNED_SETTINGS);
  const { rows } = await db.query<{ name: string; value: string }>(
    "SELECT name, current_setting(name) AS value FROM unnest($1::text[]) AS name",
    [names],
  );
  return rows.filter((row) => normalise(row.name, row.value) !== normalise(row.name, PINNED_SETTINGS[row.name]!)).map((row) => `${row.name}=${row.value}`);
}

function normalise(name: string, value: string): string {
  const v = value.toLowerCase().replace(/\s+/g, "");
  // DateStyle keeps the database's field order for input (`ISO, DMY`); only the output style is pinned.
  if (name === "DateStyle") return v.split(",")[0]!;
  if (name === "client_encoding") return v.replace(/[-_]/g, "");
  return v;
}
