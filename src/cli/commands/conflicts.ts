/**
 * `pgferry conflicts`: what both directions of a bidirectional config recorded as conflicts (rows
 * both databases wrote between two syncs): a summary per direction, table, resolution and outcome,
 * then the most recent conflicts, newest first. The forward pipeline's log is in the target's state
 * schema, the reverse's in the source's (each next to the data it writes). A conflict names its table,
 * key columns and key fingerprint, never row values, so neither does this. Exit 0 whatever it finds:
 * conflicts are resolved by policy, and the alert `PgferryConflicts` is what calls for attention.
 */
import type pg from "pg";
import type { Direction } from "../../apply/conflictGuard.js";
import { loadConfig, type Config } from "../../config/index.js";
import { PgferryError } from "../../errors.js";
import { databasePools } from "../../sql/pools.js";
import { ConflictLog, type ConflictRecord, type ConflictSummary } from "../../state/conflictLog.js";
import { CONFIG_OPTION, EXIT_OK, unexpectedPositionals, type Command } from "../command.js";

const DURATION = /^(\d{1,9})([smhdw])$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const ISO_TIME = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/;

/** `--since`: a duration back from `now` (`90s`, `15m`, `1h`, `2d`, `1w`) or an ISO 8601 time; undefined when it is neither. */
export function parseSince(text: string, now: number): Date | undefined {
  const duration = DURATION.exec(text);
  if (duration) return new Date(now - Number(duration[1]) * UNIT_MS[duration[2]!]!);
  if (!ISO_TIME.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : new Date(at);
}

/** One direction's log: where it lives and under which pipeline name. */
interface LogSide {
  direction: Direction;
  database: "source" | "target";
  stateSchema: string;
  pipeline: string;
  pool: pg.Pool;
}

interface SideReport {
  direction: Direction;
  database: "source" | "target";
  stateSchema: string;
  pipeline: string;
  unresolved: number;
}

/** What `--json` prints. */
interface ConflictsReport {
  since: Date | null;
  directions: SideReport[];
  summary: ConflictSummary[];
  conflicts: ConflictRecord[];
}

function sides(config: Config, pools: { source: pg.Pool; target: pg.Pool }, only: Direction | undefined): LogSide[] {
  const all: LogSide[] = [{ direction: "forward", database: "target", stateSchema: config.target.stateSchema, pipeline: config.source.slot, pool: pools.target }];
  if (config.reverse) {
    all.push({ direction: "reverse", database: "source", stateSchema: config.reverse.stateSchema, pipeline: config.reverse.slot, pool: pools.source });
  } else if (only === "reverse") {
    throw new PgferryError("config", "--direction reverse: the config has no reverse section, so there is no reverse pipeline to report on", {
      hint: "add a reverse section to run the reverse pipeline, or leave out --direction",
    });
  }
  return all.filter((side) => only === undefined || side.direction === only);
}

async function readReport(config: Config, pools: { source: pg.Pool; target: pg.Pool }, filter: { direction?: Direction; table?: string; since?: Date; limit: number }): Promise<ConflictsReport> {
  const report: ConflictsReport = { since: filter.since ?? null, directions: [], summary: [], conflicts: [] };
  for (const side of sides(config, pools, filter.direction)) {
    const log = new ConflictLog({ pool: side.pool, schema: side.stateSchema });
    const scope = { pipeline: side.pipeline, direction: side.direction, table: filter.table, since: filter.since };
    report.summary.push(...(await log.summary(scope)));
    report.conflicts.push(...(await log.list({ ...scope, limit: filter.limit })));
    report.directions.push({ direction: side.direction, database: side.database, stateSchema: side.stateSchema, pipeline: side.pipeline, unresolved: await log.unresolved(side.pipeline) });
  }
  report.conflicts.sort((a, b) => b.detectedAt.getTime() - a.detectedAt.getTime());
  report.conflicts.splice(filter.limit);
  return report;
}

/** Columns padded to their widest cell; `numeric` columns are right-aligned. */
function columns(header: string[], rows: string[][], numeric: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: string[]) => cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

const time = (d: Date | null) => (d ? d.toISOString() : "–");

function formatReport(report: ConflictsReport, config: Config): string {
  const since = report.since ? `since ${report.since.toISOString()}` : "recorded";
  const out: string[] = [];
  for (const side of report.directions) {
    const count = report.summary.filter((s) => s.direction === side.direction).reduce((sum, s) => sum + s.count, 0);
    out.push(`${side.direction}: pipeline ${side.pipeline}, log in schema ${side.stateSchema} on the ${side.database} database: ${count === 0 ? "no" : count} conflict${count === 1 ? "" : "s"} ${since}`);
    if (side.unresolved > 0) {
      out.push(`  ${side.unresolved} unresolved (kept: stopped, ever): the pipeline stopped there without applying that batch (reverse.conflicts: stop)`);
    }
  }
  if (!config.reverse) out.push("reverse: not configured (the config has no reverse section)");
  if (report.summary.length > 0) {
    out.push("", columns(
      ["DIRECTION", "TABLE", "RESOLUTION", "KEPT", "COUNT", "LAST"],
      report.summary.map((s) => [s.direction, s.table, s.resolution, s.kept, String(s.count), time(s.lastDetectedAt)]),
      new Set([4]),
    ));
  }
  if (report.conflicts.length > 0) {
    out.push("", `most recent ${report.conflicts.length} (newest first):`, columns(
      ["DETECTED", "DIRECTION", "TABLE", "KEY COLUMNS", "KEY FINGERPRINT", "INCOMING COMMIT", "LOCAL COMMIT", "RESOLUTION", "KEPT"],
      report.conflicts.map((c) => [time(c.detectedAt), c.direction, c.table, c.keyColumns, c.keyFingerprint, time(c.incomingCommitTime), time(c.localCommitTime), c.resolution, c.kept]),
    ));
  }
  return `${out.join("\n")}\n`;
}

export const conflictsCommand: Command = {
  name: "conflicts",
  summary: "list the conflicts both directions recorded (rows written on both sides between two syncs)",
  usage: "pgferry conflicts [--config pgferry.yaml] [--since 1h|2026-01-31T12:00Z] [--table schema.table] [--direction forward|reverse] [--json] [--limit 50]",
  options: {
    ...CONFIG_OPTION,
    since: { type: "string" },
    table: { type: "string" },
    direction: { type: "string" },
    json: { type: "boolean", default: false },
    limit: { type: "string", default: "50" },
  },
  validate(values, positionals) {
    if (values.since !== undefined && parseSince(String(values.since), Date.now()) === undefined) {
      return `--since takes a duration (90s, 15m, 1h, 2d, 1w) or an ISO 8601 time (2026-01-31T12:00Z), not '${String(values.since)}'`;
    }
    if (values.direction !== undefined && values.direction !== "forward" && values.direction !== "reverse") {
      return `--direction takes forward or reverse, not '${String(values.direction)}'`;
    }
    if (!/^\d{1,9}$/.test(String(values.limit)) || Number(values.limit) < 1) return `--limit takes a whole number of conflicts to list (1 or more), not '${String(values.limit)}'`;
    if (values.table !== undefined && String(values.table) === "") return "--table needs a table name (schema.table)";
    return unexpectedPositionals(positionals);
  },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const filter = {
      direction: values.direction as Direction | undefined,
      table: typeof values.table === "string" ? values.table : undefined,
      since: typeof values.since === "string" ? parseSince(values.since, Date.now()) : undefined,
      limit: Number(values.limit),
    };
    const pools = databasePools(config, "pgferry-conflicts", 1);
    try {
      const report = await readReport(config, pools, filter);
      io.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, config));
      return EXIT_OK;
    } finally {
      await pools.end();
    }
  },
};
