/**
 * `pgferry verify`: compares every target table (or one, `--table`) with what the mapping makes of
 * the source, by bucketed counts and row hashes, narrowing down to the differing keys. Exit 0 when
 * equal, 1 when not. Safe while the pipeline streams (differences are re-checked before they count).
 * `--direction reverse` compares the old tables with what the inverse mapping makes of the new ones
 * (docs/reverse.md); `both` runs the two comparisons, one after the other. A run over every table
 * records its outcome per direction in that direction's state schema (state/verificationLog.ts),
 * which `pgferry cutover --check` reads.
 */
import { loadConfig, type Config } from "../../config/index.js";
import { DIRECTIONS, type Direction } from "../../config/directions.js";
import { PgferryError } from "../../errors.js";
import { databasePools } from "../../sql/pools.js";
import { redactSecrets } from "../../redact.js";
import { directionRun, recordOutcome, refuseHiddenRows, type DirectionRun, type ProjectPools } from "../../verify/directions.js";
import { formatReports, verify, type EdgeReport } from "../../verify/verifier.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, unexpectedPositionals, type Command } from "../command.js";

const VERIFY_DIRECTIONS = ["forward", "reverse", "both"];

/** One report of `--json`: the edge's comparison and the direction whose plan it compared. */
export type DirectedReport = { direction: Direction } & EdgeReport;

/**
 * Best effort: the direction's outcome in its state schema (verify/directions.ts). A failure is a
 * note on stderr; the comparison's result and exit code stand.
 */
async function noteOutcome(config: Config, pools: ProjectPools, direction: Direction, reports: readonly EdgeReport[], stderr: NodeJS.WritableStream): Promise<void> {
  try {
    await recordOutcome(config, pools, direction, reports);
  } catch (error) {
    stderr.write(`pgferry verify: note: the ${direction} result was not recorded for pgferry cutover --check: ${redactSecrets((error as Error).message)}\n`);
  }
}

const HEADINGS: Record<Direction, string> = { forward: "forward (old database -> new database):\n", reverse: "reverse (new database -> old database):\n" };

export const verifyCommand: Command = {
  name: "verify",
  summary: "compare the target with the mapped source (exit 1 on differences)",
  usage: "pgferry verify [--config pgferry.yaml] [--direction forward|reverse|both] [--table schema.table] [--json] [--examples 10]",
  options: {
    ...CONFIG_OPTION,
    direction: { type: "string", default: "forward" },
    table: { type: "string" },
    json: { type: "boolean", default: false },
    examples: { type: "string", default: "10" },
  },
  validate(values, positionals) {
    if (!VERIFY_DIRECTIONS.includes(String(values.direction))) return `--direction must be forward, reverse or both, not '${String(values.direction)}'`;
    if (!/^\d{1,9}$/.test(String(values.examples))) return `--examples takes a whole number of keys to list (0 or more), not '${String(values.examples)}'`;
    if (values.table !== undefined && !String(values.table).includes(".")) return `--table takes schema.table, not '${String(values.table)}'`;
    return unexpectedPositionals(positionals);
  },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const asked = String(values.direction);
    const directions: readonly Direction[] = asked === "both" ? DIRECTIONS : [asked as Direction];
    const pools = databasePools(config, "pgferry-verify", 2);
    const projects = { old: pools.source, new: pools.target };
    try {
      const runs: DirectionRun[] = [];
      for (const direction of directions) runs.push(await directionRun(config, direction, projects));
      // Both directions read the same tables, each on its own database.
      await refuseHiddenRows(config, projects);
      const only = typeof values.table === "string" ? values.table : undefined;
      if (only && !config.tables.some((t) => t.from === only || t.to === only)) {
        throw new PgferryError("config", `--table ${only} is neither a mapped source table nor a target table`);
      }
      if (directions.includes("reverse") && !config.reverse) {
        io.stderr.write("note: the config has no reverse section; --direction reverse compares what the reverse pipeline would carry back (docs/reverse.md)\n");
      }
      const reports: DirectedReport[] = [];
      let text = "";
      for (const run of runs) {
        const options = { source: run.source, target: run.target, examples: Number(values.examples), rechecks: 3, recheckDelayMs: 1000 };
        const compared = [...(await verify(run.plans, options, only)), ...run.skipped.filter((s) => !only || s.source === only || s.target === only)];
        reports.push(...compared.map((report) => ({ direction: run.direction, ...report })));
        // Only a comparison of every table says the direction is equal.
        if (!only) await noteOutcome(config, projects, run.direction, compared, io.stderr);
        text += `${asked === "forward" ? "" : HEADINGS[run.direction]}${formatReports(compared)}`;
      }
      io.stdout.write(values.json ? `${JSON.stringify(reports, null, 2)}\n` : text);
      return reports.some((r) => r.status === "different") ? EXIT_FAILURE : EXIT_OK;
    } finally {
      await pools.end();
    }
  },
};
