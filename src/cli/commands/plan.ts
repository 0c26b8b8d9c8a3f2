/**
 * cli/commands/ — one file per `pgferry` command.
 *
 * `pgferry plan`: compiles the mapping against both live catalogs and prints, per source table,
 * its targets and where each target column comes from. `--ddl` prints target DDL derived from the
 * source alone (for users without migrations); `--check` runs the whole preflight (server settings,
 * privileges, expressions) and exits 1 listing every problem. Plain `plan` checks only what the
 * catalogs tell (tables, columns, keys, types) and says so on stderr. `--reverse` does the same for
 * the inverse plan the reverse pipeline runs (new → old, docs/reverse.md).
 */
import { describeTables } from "../../catalog/tableCatalog.js";
import { loadConfig, type Config } from "../../config/index.js";
import { directionConfig } from "../../config/directions.js";
import { preflight, PreflightError } from "../../pipeline/preflight.js";
import { compileReversePlan, loadPlan } from "../../plan/loadPlan.js";
import { describeStreamFormat } from "../../pipeline/streamFormat.js";
import { formatPlan, formatReversePlan } from "../../plan/planReport.js";
import { targetDdl } from "../../transform/targetDdl.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, unexpectedPositionals, type Command, type CommandIo } from "../command.js";
import { databasePools, withPooledClient, type DatabasePools } from "../../sql/pools.js";

/** Plain `plan` reads the catalogs only: what it does not check, said where an operator looks. */
export const PLAN_ONLY_NOTE =
  "note: plan checked tables, columns, keys and types against the catalogs only; SQL expressions (columns.sql, where), privileges and server settings are checked by `pgferry plan --check`\n";

export const planCommand: Command = {
  name: "plan",
  summary: "print the compiled mapping (--ddl: target DDL; --check: full preflight; --reverse: the inverse plan)",
  usage: "pgferry plan [--config pgferry.yaml] [--ddl | --check] [--reverse]",
  options: {
    ...CONFIG_OPTION,
    ddl: { type: "boolean", default: false },
    check: { type: "boolean", default: false },
    reverse: { type: "boolean", default: false },
  },
  validate(values, positionals) {
    if (values.ddl && values.check) return "--ddl and --check exclude each other: --ddl prints target DDL, --check runs the full preflight";
    if (values.ddl && values.reverse) return "--ddl and --reverse exclude each other: the reverse writes into the old tables, which exist";
    return unexpectedPositionals(positionals);
  },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const pools = databasePools(config, "pgferry-plan", 2);
    const { source, target } = pools;
    try {
      if (values.reverse) return await planReverse(config, pools, values.check === true, io);
      if (values.ddl) {
        // The source alone: the target need not exist yet.
        const sourceTables = await describeTables(source, config.tables.map((t) => t.from));
        io.stdout.write(await withPooledClient(source, (client) => targetDdl(client, config.tables, sourceTables)));
        return EXIT_OK;
      }
      if (values.check) {
        // Reached through the tagged pools first (the source, then the target), so an unreachable
        // database is reported as such (with its side and URL) rather than from inside one of the
        // preflight's own probes.
        await source.query("SELECT 1");
        await target.query("SELECT 1");
        try {
          const { plans } = await preflight(config, source, target);
          io.stdout.write(formatPlan(plans));
          io.stdout.write(`${describeStreamFormat(config.apply.format, plans)}\n`);
          io.stdout.write("check: no problems found\n");
          return EXIT_OK;
        } catch (error) {
          if (!(error instanceof PreflightError)) throw error;
          io.stdout.write(`check: ${error.problems.length} problem(s):\n${error.problems.map((p) => `  - ${p}`).join("\n")}\n`);
          return EXIT_FAILURE;
        }
      }
      const { plans, problems } = await loadPlan({ mappings: config.tables, snapshotFormat: config.snapshot.format, bidirectional: config.reverse !== undefined }, source, target);
      io.stdout.write(formatPlan(plans));
      if (problems.length === 0) io.stdout.write(`${describeStreamFormat(config.apply.format, plans)}\n`);
      if (problems.length > 0) io.stdout.write(`\n${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
      io.stderr.write(PLAN_ONLY_NOTE);
      return problems.length > 0 ? EXIT_FAILURE : EXIT_OK;
    } finally {
      await pools.end();
    }
  },
};

/** Plain `plan --reverse` compiles the inverse against the catalogs only; `--check` runs the reverse start-up check. */
export const REVERSE_PLAN_ONLY_NOTE =
  "note: plan --reverse checked the inverse mapping against the catalogs only; SQL expressions, privileges and server settings are checked by `pgferry plan --reverse --check`\n";

/**
 * The inverse plan, printed as `plan` prints the forward one. Without a `reverse` section it is what
 * one would run (and says so); `--check` needs the section, since it checks the reverse's own slot,
 * publication and state against both databases, as `pgferry run --direction reverse` does.
 */
async function planReverse(config: Config, pools: DatabasePools, check: boolean, io: CommandIo): Promise<number> {
  const { source, target } = pools;
  if (check) {
    const view = directionConfig(config, "reverse");
    await source.query("SELECT 1");
    await target.query("SELECT 1");
    try {
      // The reverse reads the new database (the forward's target) and writes the old one.
      await preflight(view, target, source, { direction: "reverse", original: config });
    } catch (error) {
      if (!(error instanceof PreflightError)) throw error;
      io.stdout.write(`check: ${error.problems.length} problem(s):\n${error.problems.map((p) => `  - ${p}`).join("\n")}\n`);
      return EXIT_FAILURE;
    }
    io.stdout.write(formatReversePlan(await compileReversePlan({ mappings: config.tables }, { old: source, new: target })));
    io.stdout.write("check: no problems found\n");
    return EXIT_OK;
  }
  const reverse = await compileReversePlan({ mappings: config.tables }, { old: source, new: target });
  io.stdout.write(formatReversePlan(reverse));
  if (reverse.problems.length > 0) io.stdout.write(`\n${reverse.problems.length} problem(s):\n${reverse.problems.map((p) => `  - ${p}`).join("\n")}\n`);
  if (!config.reverse) io.stderr.write("note: the config has no reverse section; this is the plan one would run (docs/reverse.md)\n");
  io.stderr.write(REVERSE_PLAN_ONLY_NOTE);
  return reverse.problems.length > 0 ? EXIT_FAILURE : EXIT_OK;
}
