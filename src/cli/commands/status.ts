/**
 * `pgferry status`: asks the running daemon (`GET /v1/status` on control.listen) and prints the
 * phase, lag, checkpoint and a per-table table; `--json` prints the JSON. With control.listen port 0
 * it asks the port the daemon recorded (daemonAddress.ts). When no daemon answers, it reads the state
 * the daemon keeps in the target's state schema instead, and says so.
 */
import { openPool } from "../../sql/session.js";
import { loadConfig, parseListenAddress, type Config } from "../../config/index.js";
import { PgferryError, tagEndpoint } from "../../errors.js";
import { tableReport, type PipelineStatus, type TableReport } from "../../control/pipelineMonitor.js";
import { formatBytes, formatSeconds } from "../../control/statusPage.js";
import { formatLsn } from "../../source/lsn.js";
import { postgresStores } from "../../state/postgresStores.js";
import { CONFIG_OPTION, EXIT_OK, type Command } from "../command.js";
import { picksFreePort, recordedDaemonListen } from "../daemonAddress.js";

const TIMEOUT_MS = 3_000;

/** What `--json` prints when the daemon does not answer: the state read from the target. */
interface StoredStatus {
  daemon: "not running";
  reason: string;
  pipeline: string;
  checkpoint: { commitLsn: string; endLsn: string; commitTime: string | null; updatedAt: string } | null;
  tables: TableReport[];
}

/** Where to reach the daemon: a wildcard listen address is reached on loopback. */
export function controlUrl(listen: string): string {
  const address = parseListenAddress(listen);
  if (!address) throw new PgferryError("config", `control.listen is not host:port: ${listen}`);
  const host = address.host === "0.0.0.0" ? "127.0.0.1" : address.host === "::" ? "::1" : address.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}

async function fetchStatus(base: string): Promise<PipelineStatus> {
  let response: Response;
  try {
    response = await fetch(`${base}/v1/status`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = (error as Error).name === "TimeoutError" ? `no answer within ${TIMEOUT_MS / 1000} s` : cause?.code ?? cause?.message ?? (error as Error).message;
    throw new Error(`no answer from pgferry at ${base} (${reason})`);
  }
  const body = await response.text();
  if (!response.ok) throw new Error(`${base}/v1/status answered HTTP ${response.status}`);
  try {
    const status = JSON.parse(body) as PipelineStatus;
    if (typeof status.phase !== "string" || !Array.isArray(status.tables)) throw new Error("unexpected shape");
    return status;
  } catch {
    throw new Error(`${base}/v1/status did not answer with pgferry's status JSON`);
  }
}

async function readStoredStatus(config: Config, reason: string): Promise<StoredStatus> {
  const pool = openPool(config.target.url, { applicationName: "pgferry-status", max: 1 });
  try {
    const store = postgresStores({ pool, schema: config.target.stateSchema, pipeline: config.source.slot }).checkpoints;
    const exists = await store.exists().catch((error: unknown) => {
      throw new PgferryError("connection", `${reason}, and the target cannot be read: ${(error as Error).message}`, {
        cause: tagEndpoint(error, "target", config.target.url),
        hint: "check target.url and that the server is up",
      });
    });
    const summary = exists ? await store.summary() : null;
    if (!summary) {
      throw new PgferryError("state", `${reason}, and the target has no state for pipeline ${config.source.slot} in schema ${config.target.stateSchema}`, {
        hint: "start the pipeline with `pgferry run` (it creates the state with the first snapshot)",
      });
    }
    const { checkpoint } = summary;
    return {
      daemon: "not running",
      reason,
      pipeline: config.source.slot,
      checkpoint: {
        commitLsn: formatLsn(checkpoint.commitLsn),
        endLsn: formatLsn(checkpoint.endLsn),
        commitTime: checkpoint.commitTime?.toISOString() ?? null,
        updatedAt: summary.updatedAt.toISOString(),
      },
      tables: (await store.tables()).map(tableReport),
    };
  } finally {
    await pool.end();
  }
}

export function formatTables(tables: readonly TableReport[]): string {
  const header = ["TABLE", "STATE", "ROWS COPIED", "ESTIMATED", "%"];
  const rows = tables.map((t) => [t.table, t.state, String(t.rowsCopied), t.rowsEstimated === null ? "–" : String(t.rowsEstimated), t.percent === null ? "–" : t.percent.toFixed(1)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ").trimEnd();
  const errors = tables.filter((t) => t.error).map((t) => `  ${t.table}: ${t.error}`);
  return [line(header), ...rows.map(line), ...(errors.length > 0 ? ["errors:", ...errors] : [])].join("\n");
}

function formatLive(status: PipelineStatus): string {
  const ready = status.readiness.ready ? "ready" : `not ready: ${status.readiness.reason}`;
  const checkpoint = status.checkpoint ? `${status.checkpoint.endLsn}${status.checkpoint.commitTime ? ` (source commit ${status.checkpoint.commitTime})` : ""}` : "–";
  const lines = [
    `pipeline ${status.pipeline}: phase ${status.phase} since ${status.phaseSince} (${ready})`,
    `lag ${formatSeconds(status.lag.seconds)}, ${formatBytes(status.lag.bytes)} · checkpoint ${checkpoint} · slot ${status.slot.name} retains ${formatBytes(status.slot.retainedWalBytes)}`,
  ];
  if (status.errors.total > 0) lines.push(`errors ${status.errors.total}${status.errors.last ? ` (last: ${status.errors.last.kind} at ${status.errors.last.at}: ${status.errors.last.message})` : ""}`);
  return `${lines.join("\n")}\n\n${formatTables(status.tables)}\n`;
}

function formatStored(status: StoredStatus): string {
  const cp = status.checkpoint;
  const checkpoint = cp ? `${cp.endLsn}${cp.commitTime ? ` (source commit ${cp.commitTime})` : ""}, written ${cp.updatedAt}` : "–";
  return `pgferry is not running: ${status.reason}; state read from the target instead\npipeline ${status.pipeline}: checkpoint ${checkpoint}\n\n${formatTables(status.tables)}\n`;
}

export const statusCommand: Command = {
  name: "status",
  summary: "show the running pipeline's phase, lag, checkpoint and per-table state",
  usage: "pgferry status [--json] [--config pgferry.yaml]",
  options: { ...CONFIG_OPTION, json: { type: "boolean", default: false } },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    let live: PipelineStatus | undefined;
    let reason = "";
    const listen = recordedDaemonListen(config);
    if (listen === undefined && picksFreePort(config)) {
      reason = `no running pgferry recorded its control port for this config (control.listen ${config.control.listen} picks a free port)`;
    } else {
      try {
        live = await fetchStatus(controlUrl(listen ?? config.control.listen));
      } catch (error) {
        reason = (error as Error).message;
      }
    }
    if (live) {
      io.stdout.write(values.json ? `${JSON.stringify(live, null, 2)}\n` : formatLive(live));
      return EXIT_OK;
    }
    let stored: StoredStatus;
    try {
      stored = await readStoredStatus(config, reason);
    } catch (error) {
      if (error instanceof PgferryError) throw error;
      throw new PgferryError("state", `${reason}; reading the target's state failed: ${(error as Error).message}`, { cause: tagEndpoint(error, "target", config.target.url) });
    }
    if (values.json) {
      io.stderr.write(`pgferry status: ${reason}; state read from the target instead\n`);
      io.stdout.write(`${JSON.stringify(stored, null, 2)}\n`);
    } else {
      io.stdout.write(formatStored(stored));
    }
    return EXIT_OK;
  },
};
