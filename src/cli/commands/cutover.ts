/**
 * `pgferry cutover`: the switch from the old project to the new one.
 *
 * `--check` reports whether each readiness item holds (src/cutover/readiness.ts): a table of item,
 * ready or NOT READY, detail and hint, or `--json` (the ReadinessReport); exit 0 only when every item
 * is ready, else 1. It changes nothing, so a cutover script can run it before each traffic step.
 * Without `--check`, the switch itself (src/cutover/procedure.ts) runs: see runSwitch.
 */
import { loadConfig } from "../../config/index.js";
import { readiness, readinessLimits, VERIFY_MODES, type VerifyMode } from "../../cutover/readiness.js";
import type { ReadinessReport } from "../../cutover/types.js";
import { databasePools } from "../../sql/pools.js";
import { CUTOVER_OPTIONS, cutoverArgumentProblem, runCutoverCommand } from "./switchCommand.js";
import { EXIT_FAILURE, EXIT_OK, unexpectedPositionals, type Command, type CommandIo, type CommandValues } from "../command.js";

/** Options of the `--check` branch; they mean nothing to the switch. */
const CHECK_ONLY = ["json", "verify"] as const;

export const cutoverCommand: Command = {
  name: "cutover",
  summary: "check that the new project is ready to take the traffic (--check), or switch to it",
  usage: "pgferry cutover [--config pgferry.yaml] (--check [--json] [--verify recent|full|sample|none] | [--dry-run] [--timeout 300s])",
  options: {
    ...CUTOVER_OPTIONS,
    check: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    verify: { type: "string" },
  },
  validate(values, positionals) {
    if (values.check) {
      if (values.verify !== undefined && !VERIFY_MODES.includes(String(values.verify) as VerifyMode)) {
        return `--verify must be recent, full, sample or none, not '${String(values.verify)}'`;
      }
      return unexpectedPositionals(positionals);
    }
    const stray = CHECK_ONLY.filter((option) => values[option] !== undefined && values[option] !== false);
    if (stray.length > 0) return `${stray.map((o) => `--${o}`).join(" and ")} go${stray.length === 1 ? "es" : ""} with --check`;
    return cutoverArgumentProblem(values, positionals);
  },
  run(values, _positionals, io) {
    return values.check ? runCheck(values, io) : runSwitch(values, io);
  },
};

async function runCheck(values: CommandValues, io: CommandIo): Promise<number> {
  const config = loadConfig(String(values.config), io.env);
  const pools = databasePools(config, "pgferry-cutover-check", 4);
  try {
    const report = await readiness({ config, old: pools.source, new: pools.target, limits: readinessLimits(config), verify: (values.verify as VerifyMode | undefined) ?? "recent" });
    io.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, config.source.slot));
    return report.ready ? EXIT_OK : EXIT_FAILURE;
  } finally {
    await pools.end();
  }
}

/** `pgferry cutover` without `--check`: the switch (src/cutover/procedure.ts). */
function runSwitch(values: CommandValues, io: CommandIo): Promise<number> {
  return runCutoverCommand(values, io, "cutover");
}

/** The report as a table: item, status, detail, and the hint under an item that is not ready. */
export function formatReport(report: ReadinessReport, pipeline: string): string {
  const name = Math.max(5, ...report.items.map((i) => i.name.length));
  const status = "NOT READY".length;
  const indent = " ".repeat(name + status + 4);
  const lines = [
    `pgferry cutover --check: pipeline ${pipeline}, ${report.checkedAt.toISOString()}`,
    `${"CHECK".padEnd(name)}  ${"STATUS".padEnd(status)}  DETAIL`,
  ];
  for (const item of report.items) {
    lines.push(`${item.name.padEnd(name)}  ${(item.ready ? "ready" : "NOT READY").padEnd(status)}  ${item.detail}`);
    if (!item.ready && item.hint) lines.push(`${indent}hint: ${item.hint}`);
  }
  const waiting = report.items.filter((i) => !i.ready);
  lines.push(
    waiting.length === 0
      ? `ready for the cutover: all ${report.items.length} checks pass`
      : `NOT READY for the cutover: ${waiting.length} of ${report.items.length} checks fail (${waiting.map((i) => i.name).join(", ")})`,
  );
  return `${lines.join("\n")}\n`;
}
