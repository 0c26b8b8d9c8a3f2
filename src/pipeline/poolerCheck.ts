/**
 * A source or target URL that reaches PostgreSQL through a connection pooler (PgBouncer, Supavisor,
 * Neon's or Supabase's poolers) is refused before anything is created. The source needs a direct
 * connection: logical replication runs on a walsender session, and the snapshot is exported by one
 * session and imported by others. The target needs a session of its own for the whole run: pgferry
 * holds its pipeline lock (a session advisory lock) and session settings there, and a transaction
 * pooler hands the server session to other clients between transactions (the lock stays behind on
 * the pooler's server connection, the settings go to whoever comes next).
 *
 * A pooler shows itself in ways PostgreSQL itself never does (PgBouncer 1.18, observed):
 *   - it refuses startup parameters it does not know: `unsupported startup parameter: options`
 *     (or `replication`), SQLSTATE 08P01; newer PgBouncers say `unsupported startup parameter in
 *     options: <name>` for a `-c` setting they do not track;
 *   - configured with `ignore_startup_parameters = options`, it accepts `-c` settings and drops them:
 *     a placeholder setting sent in the startup packet is not set in the session;
 *   - in transaction mode, one client's consecutive transactions run on different server processes,
 *     and two clients' transactions on the same one (`pg_backend_pid()`);
 *   - a few host names are poolers by construction (`*.pooler.supabase.com`, Neon's `-pooler` hosts).
 * A plain TCP proxy, NAT or port forward shows none of these, so it passes. (A pooler also answers
 * BackendKeyData with its own process id, but so do proxies that are not poolers, such as Neon's,
 * so that is not used.)
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { describeUrl } from "../redact.js";
import { hostHint, poolerProblem, poolerSignature } from "../sql/poolerRefusal.js";
import { classify } from "./errorPolicy.js";

export type Side = "source" | "target";

/** A placeholder setting (any `prefix.name` is accepted at startup) that only a direct session keeps. */
const PROBE_SETTING = "pgferry.pooler_probe";
const APPLICATION_NAME = "pgferry-preflight";
const CONNECT_TIMEOUT_MS = 15_000;
/** Generous for `SELECT pg_backend_pid()`: only a pooler with no free server connection makes it wait. */
const QUERY_TIMEOUT_MS = 10_000;

/**
 * Probes both URLs for a pooler and pushes one problem per side found behind one. True when one was
 * found (the rest of preflight, run through it, would say nothing useful).
 */
export async function findPoolers(config: { source: { url: string }; target: { url: string } }, problems: string[]): Promise<boolean> {
  const found = await Promise.all([
    checkDirectConnection("source", config.source.url, problems),
    checkDirectConnection("target", config.target.url, problems),
  ]);
  return found.some(Boolean);
}

/**
 * Probes one URL: its host name, a session with a placeholder setting in its startup options, two
 * sessions' server process ids across transactions, and (source) a walsender session. Pushes a
 * problem and returns true when a pooler answers. A transient failure (the server going away) is
 * thrown, as any preflight query's would be; a non-pooler failure of the replication connection is
 * pushed as its own problem.
 */
export async function checkDirectConnection(side: Side, url: string, problems: string[]): Promise<boolean> {
  const hint = hostHint(url);
  if (hint.finding !== undefined) {
    problems.push(poolerProblem(side, url, [hint.finding]));
    return true;
  }
  const findings = await probeSessions(url);
  if (side === "source") {
    // Run even when the sessions said enough: a refused walsender is the finding that matters most here.
    const replication = await probeReplication(url);
    if (replication.pooler !== undefined) findings.unshift(replication.pooler);
    else if (replication.problem !== undefined && findings.length === 0) problems.push(replication.problem);
  }
  if (findings.length === 0) return false;
  problems.push(poolerProblem(side, url, findings));
  return true;
}

function probeClient(url: string, config: pg.ClientConfig = {}): pg.Client {
  const client = new pg.Client({
    ...config,
    connectionString: url,
    application_name: APPLICATION_NAME,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
  });
  client.on("error", () => undefined);
  return client;
}

/** Connects, or returns the pooler finding that the refusal is; anything else is thrown. */
async function connect(client: pg.Client): Promise<string | undefined> {
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    await client.end().catch(() => undefined);
    const found = poolerSignature(error);
    if (found !== undefined) return found;
    throw error;
  }
}

/**
 * The URL's own `options` (node-pg lets the URL's win over the config's) merged with the probe
 * setting, and the URL without them.
 */
function withProbeOption(url: string, setting: string): { url: string; options: string } {
  try {
    const parsed = new URL(url);
    const own = parsed.searchParams.get("options");
    if (own !== null) {
      parsed.searchParams.delete("options");
      return { url: parsed.toString(), options: `${own.trim()} ${setting}`.trim() };
    }
  } catch {
    // not a URL: node-pg parses it; its own options, if any, win and the probe reads as dropped
  }
  return { url, options: setting };
}

async function backendPid(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  return rows[0]!.pid;
}

async function probeSessions(url: string): Promise<string[]> {
  const nonce = randomBytes(8).toString("hex");
  const probe = withProbeOption(url, `-c ${PROBE_SETTING}=${nonce}`);
  const a = probeClient(probe.url, { options: probe.options });
  const refused = await connect(a);
  if (refused !== undefined) return [refused];
  const findings: string[] = [];
  let b: pg.Client | undefined;
  try {
    const { rows } = await a.query<{ value: string | null }>("SELECT current_setting($1, true) AS value", [PROBE_SETTING]);
    if (rows[0]?.value !== nonce) {
      findings.push("a -c setting sent in the startup options was missing from the session (dropped, as PgBouncer's ignore_startup_parameters = options does)");
    }
    // A direct session is one server process from connect to close, never shared.
    const pids = [await backendPid(a), await backendPid(a), await backendPid(a)];
    if (new Set(pids).size > 1) {
      findings.push(`one connection's transactions ran in different server processes (pids ${[...new Set(pids)].join(", ")}), which is transaction pooling`);
      return findings;
    }
    b = probeClient(url);
    const bRefused = await connect(b);
    if (bRefused !== undefined) {
      b = undefined;
      findings.push(bRefused);
      return findings;
    }
    await b.query("BEGIN");
    const pidB = await backendPid(b);
    if (pidB === pids[0]) {
      findings.push(`two connections' transactions ran in the same server process (pid ${pidB}), which is transaction pooling`);
      return findings;
    }
    // b holds its server process in an open transaction; a direct session keeps its own.
    let pidA: number | undefined;
    try {
      pidA = await backendPid(a);
    } catch (error) {
      if (!/timeout/i.test((error as Error).message)) throw error;
    }
    if (pidA === undefined) {
      findings.push(`a query waited more than ${QUERY_TIMEOUT_MS / 1000} s for another connection's open transaction, which is transaction pooling with no free server connection`);
    } else if (pidA !== pids[0]) {
      findings.push(`one connection's transactions ran in different server processes (pids ${pids[0]}, ${pidA}), which is transaction pooling`);
    }
    return findings;
  } finally {
    await b?.end().catch(() => undefined);
    await a.end().catch(() => undefined);
  }
}

/** SQLSTATEs of replication refusals that preflight's server checks already report in their own words. */
const REPORTED_ELSEWHERE = new Set([
  "42501", // must be superuser or replication role (the REPLICATION check)
  "53300", // requested standby connections exceed max_wal_senders (the max_wal_senders check)
]);

/** A walsender session (`replication=database`) and IDENTIFY_SYSTEM, as the pipeline opens it. */
async function probeReplication(url: string): Promise<{ pooler?: string; problem?: string }> {
  const client = probeClient(url, { replication: "database" } as pg.ClientConfig);
  try {
    await client.connect();
    await client.query("IDENTIFY_SYSTEM");
    return {};
  } catch (error) {
    const found = poolerSignature(error, "a replication connection");
    if (found !== undefined) return { pooler: found };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && REPORTED_ELSEWHERE.has(code)) return {};
    if (classify(error).disposition === "retry") throw error;
    return { problem: `source.url: a replication connection (replication=database) to ${describeUrl(url)} fails: ${(error as Error).message}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}
