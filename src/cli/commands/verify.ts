/**
 * `pgferry verify`: compares every target table (or one, `--table`) with what the mapping makes of
 * the source, by bucketed counts and row hashes, narrowing down to the differing keys. Exit 0 when
 * equal, 1 when not. Safe while the pipeline streams (differences are re-checked before they count).
 * `--direction reverse` compares the old tables with what the inverse mapping makes of the new ones
 * (docs/reverse.md); `both` runs the two comparisons, one after the other. A run over every table
 * records its outcome per direction in that direction's state schema (state/verificationLog.ts),
 * which `pgferry cutover --check` reads.
 */
import type pg from "pg";
import { loadConfig, type Config } from "../../config/index.js";
import { DIRECTIONS, type Direction } from "../../config/directions.js";
import { PgferryError } from "../../errors.js";
import { checkRowSecurity } from "../../pipeline/accessChecks.js";
import { databasePools, type DatabasePools } from "../../sql/pools.js";
import { compileReversePlan, loadPlan } from "../../plan/loadPlan.js";
import type { TablePlan } from "../../plan/plan.js";
import { redactSecrets } from "../../redact.js";
import { postgresStores } from "../../state/postgresStores.js";
import { VerificationLog } from "../../state/verificationLog.js";
import { formatReports, verify, type EdgeReport } from "../../verify/verifier.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, unexpectedPositionals, type Command } from "../command.js";

const VERIFY_DIRECTIONS = ["forward", "reverse", "both"];

/** One report of `--json`: the edge's comparison and the direction whose plan it compared. */
export type DirectedReport = { direction: Direction } & EdgeReport;

/** What one direction compares: its plan, the pools as its source and target, and entries it does not carry. */
interface DirectionRun {
  direction: Direction;
  plans: TablePlan[];
  source: pg.Pool;
  target: pg.Pool;
  /** Forward-only entries: nothing of them goes back, so the reverse has nothing to compare. */
  skipped: EdgeReport[];
}

async function forwardRun(config: Config, pools: DatabasePools): Promise<DirectionRun> {
  const { plans, problems } = await loadPlan({ mappings: config.tables, snapshotFormat: config.snapshot.format, bidirectional: config.reverse !== undefined }, pools.source, pools.target);
  if (problems.length > 0) throw new PgferryError("mapping", `the mapping does not compile:\n${problems.map((p) => `  - ${p}`).join("\n")}`, { hint: "run pgferry plan --check" });
  return { direction: "forward", plans, source: pools.source, target: pools.target, skipped: [] };
}

/** The inverse plan reads the new database (the config's target) and compares the old one (its source). */
async function reverseRun(config: Config, pools: DatabasePools): Promise<DirectionRun> {
  const reverse = await compileReversePlan({ mappings: config.tables, snapshotFormat: config.snapshot.format }, { old: pools.source, new: pools.target });
  if (reverse.problems.length > 0) {
    throw new PgferryError("mapping", `the reverse mapping does not compile:\n${reverse.problems.map((p) => `  - ${p}`).join("\n")}`, { hint: "run pgferry plan --reverse" });
  }
  const carried = new Set(reverse.mappings.map((m) => m.forwardIndex));
  const skipped = config.tables.flatMap((t, i): EdgeReport[] => {
    if (carried.has(i)) return [];
    const reason = t.reverse === false ? `forward-only: tables[${i}].reverse is false` : `forward-only: tables[${i}] has a hook and no reverse hook`;
    return [{ source: t.to, target: t.from, rows: 0, status: "skipped", reason, missing: 0, extra: 0, changed: 0, examples: [] }];
  });
  return { direction: "reverse", plans: reverse.plans, source: pools.target, target: pools.source, skipped };
}

/**
 * Best effort: the direction's outcome in its state schema (the forward's on the target, the
 * reverse's on the source), when that schema exists (a pipeline has run). A failure is a note on
 * stderr; the comparison's result and exit code stand.
 */
async function recordOutcome(config: Config, pools: DatabasePools, direction: Direction, reports: readonly EdgeReport[], stderr: NodeJS.WritableStream): Promise<void> {
  const state = direction === "forward"
    ? { pool: pools.target, schema: config.target.stateSchema, pipeline: config.source.slot }
    : config.reverse && { pool: pools.source, schema: config.reverse.stateSchema, pipeline: config.reverse.slot };
  if (!state) return;
  const compared = reports.filter((r) => r.status !== "skipped");
  const different = compared.filter((r) => r.status === "different").length;
  try {
    const { checkpoints } = postgresStores(state);
    if (!(await checkpoints.exists())) return;
    await checkpoints.migrate();
    await new VerificationLog(state).record({ pipeline: state.pipeline, direction, equal: different === 0, tables: compared.length, different });
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
    try {
      const runs: DirectionRun[] = [];
      for (const direction of directions) runs.push(direction === "forward" ? await forwardRun(config, pools) : await reverseRun(config, pools));
      // Row-level security would make either side show other rows than it holds: refuse, as preflight does.
      // Both directions read the same tables, each on its own database.
      const hidden: string[] = [];
      await checkRowSecurity(pools.source, config.tables.map((t) => t.from), "source", hidden);
      await checkRowSecurity(pools.target, config.tables.map((t) => t.to), "target", hidden);
      if (hidden.length > 0) throw new PgferryError("preflight", `row-level security would hide rows from the comparison:\n${hidden.map((p) => `  - ${p}`).join("\n")}`);
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
        if (!only) await recordOutcome(config, pools, run.direction, compared, io.stderr);
        text += `${asked === "forward" ? "" : HEADINGS[run.direction]}${formatReports(compared)}`;
      }
      io.stdout.write(values.json ? `${JSON.stringify(reports, null, 2)}\n` : text);
      return reports.some((r) => r.status === "different") ? EXIT_FAILURE : EXIT_OK;
    } finally {
      await pools.end();
    }
  },
};
