/**
 * `pgferry resync <schema.table> [--wait]`: asks the running daemon to resync one source table
 * while it keeps streaming (POST /v1/tables/:table/resync, with control.adminToken as the bearer
 * token), and with --wait follows its progress until it is done.
 */
import { loadConfig } from "../../config/index.js";
import { PgferryError } from "../../errors.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, unexpectedPositionals, type Command } from "../command.js";
import { daemonListen } from "../daemonAddress.js";
import { controlUrl } from "./status.js";

interface ResyncView {
  id: string;
  table: string;
  state: string;
  rowsDone?: number;
  rowsEstimated?: number | null;
  chunksDone?: number;
  error?: string | null;
}

function errorText(body: Record<string, unknown>, status: number): string {
  return typeof body.error === "string" ? body.error : `HTTP ${status}`;
}

async function call(url: string, init: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    throw new PgferryError("connection", `no answer from pgferry at ${new URL(url).origin} (${cause?.code ?? (error as Error).message})`, {
      hint: "is `pgferry run` up with this config? resync goes through its control API",
    });
  }
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { error: text.slice(0, 200) };
  }
  return { status: response.status, body };
}

function bar(view: ResyncView): string {
  const done = view.rowsDone ?? 0;
  const total = view.rowsEstimated && view.rowsEstimated > 0 ? view.rowsEstimated : null;
  const fraction = total ? Math.min(1, done / total) : 0;
  const width = 30;
  const filled = Math.round(fraction * width);
  const percent = total ? `${(fraction * 100).toFixed(0).padStart(3)}%` : "   ?";
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${percent} ${done} rows, ${view.chunksDone ?? 0} chunks, ${view.state}`;
}

export const resyncCommand: Command = {
  name: "resync",
  summary: "resync one source table while streaming (through the running daemon)",
  usage: "pgferry resync <schema.table> [--config pgferry.yaml] [--wait]",
  options: { ...CONFIG_OPTION, wait: { type: "boolean", default: false } },
  validate(_values, positionals) {
    const [table, ...extra] = positionals;
    if (table === undefined) return "missing the table to resync (schema.table)";
    if (!table.includes(".")) return `expected the table as schema.table, not '${table}'`;
    return unexpectedPositionals(extra);
  },
  async run(values, positionals, io) {
    const table = positionals[0]!;
    const config = loadConfig(String(values.config), io.env);
    const base = controlUrl(daemonListen(config));
    const headers: Record<string, string> = config.control.adminToken ? { authorization: `Bearer ${config.control.adminToken}` } : {};
    const started = await call(`${base}/v1/tables/${encodeURIComponent(table)}/resync`, { method: "POST", headers });
    if (started.status !== 202) {
      io.stderr.write(`pgferry resync: ${errorText(started.body, started.status)}\n`);
      return started.status === 404 || started.status === 409 ? EXIT_USAGE : EXIT_FAILURE;
    }
    const id = String(started.body.id);
    io.stdout.write(`resync of ${table} started: ${id}\n`);
    if (!values.wait) return EXIT_OK;
    const tty = Boolean((io.stdout as NodeJS.WriteStream).isTTY);
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { status, body } = await call(`${base}/v1/resyncs/${encodeURIComponent(id)}`, { headers });
      if (status !== 200) throw new PgferryError("state", `resync ${id}: ${errorText(body, status)}`);
      const view = body as unknown as ResyncView;
      io.stdout.write(tty ? `\r${bar(view)}` : `${bar(view)}\n`);
      if (view.state === "done") {
        io.stdout.write(`${tty ? "\n" : ""}resync of ${table} done\n`);
        return EXIT_OK;
      }
      if (view.state === "failed") {
        io.stdout.write(`${tty ? "\n" : ""}resync of ${table} failed: ${view.error ?? "unknown error"}\n`);
        return EXIT_FAILURE;
      }
    }
  },
};
