/**
 * `pgferry verify`: compares every target table (or one, `--table`) with what the mapping makes of
 * the source, by bucketed counts and row hashes, narrowing down to the differing keys. Exit 0 when
 * equal, 1 when not. Safe while the pipeline streams (differences are re-checked before they count).
 */
import { loadConfig } from "../../config/index.js";
import { PgferryError } from "../../errors.js";
import { checkRowSecurity } from "../../pipeline/accessChecks.js";
import { databasePools } from "../../sql/pools.js";
import { loadPlan } from "../../plan/loadPlan.js";
import { formatReports, verify } from "../../verify/verifier.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, unexpectedPositionals, type Command } from "../command.js";

export const verifyCommand: Command = {
  name: "verify",
  summary: "compare the target with the mapped source (exit 1 on differences)",
  usage: "pgferry verify [--config pgferry.yaml] [--table schema.table] [--json] [--examples 10]",
  options: { ...CONFIG_OPTION, table: { type: "string" }, json: { type: "boolean", default: false }, examples: { type: "string", default: "10" } },
  validate(values, positionals) {
    if (!/^\d{1,9}$/.test(String(values.examples))) return `--examples takes a whole number of keys to list (0 or more), not '${String(values.examples)}'`;
    if (values.table !== undefined && !String(values.table).includes(".")) return `--table takes schema.table, not '${String(values.table)}'`;
    return unexpectedPositionals(positionals);
  },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const pools = databasePools(config, "pgferry-verify", 2);
    const { source, target } = pools;
    try {
      const { plans, problems } = await loadPlan({ mappings: config.tables, snapshotFormat: config.snapshot.format }, source, target);
      if (problems.length > 0) throw new PgferryError("mapping", `the mapping does not compile:\n${problems.map((p) => `  - ${p}`).join("\n")}`, { hint: "run pgferry plan --check" });
      // Row-level security would make either side show other rows than it holds: refuse, as preflight does.
      const hidden: string[] = [];
      await checkRowSecurity(source, config.tables.map((t) => t.from), "source", hidden);
      await checkRowSecurity(target, config.tables.map((t) => t.to), "target", hidden);
      if (hidden.length > 0) throw new PgferryError("preflight", `row-level security would hide rows from the comparison:\n${hidden.map((p) => `  - ${p}`).join("\n")}`);
      const only = typeof values.table === "string" ? values.table : undefined;
      if (only && !plans.some((p) => p.id === only || p.edges.some((e) => e.table.id === only))) {
        throw new PgferryError("config", `--table ${only} is neither a mapped source table nor a target table`);
      }
      const reports = await verify(plans, { source, target, examples: Number(values.examples), rechecks: 3, recheckDelayMs: 1000 }, only);
      io.stdout.write(values.json ? `${JSON.stringify(reports, null, 2)}\n` : formatReports(reports));
      return reports.some((r) => r.status === "different") ? EXIT_FAILURE : EXIT_OK;
    } finally {
      await pools.end();
    }
  },
};
