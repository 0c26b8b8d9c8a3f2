/**
 * The switch commands' shared part: `pgferry cutover` (without --check) and `pgferry rollback` run
 * the procedure of src/cutover/procedure.ts with its progress on stdout.
 */
import { loadConfig } from "../../config/index.js";
import { cutover, reverseSection, rollback, type CutoverStep } from "../../cutover/procedure.js";
import { createLogger } from "../../log/logger.js";
import { databasePools } from "../../sql/pools.js";
import { CUTOVER_STEP_COUNT, type CutoverOperation } from "../../state/cutoverSteps.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, UsageError, unexpectedPositionals, type CommandIo, type CommandValues } from "../command.js";
import { handleShutdownSignals } from "../signals.js";

export const CUTOVER_OPTIONS = {
  ...CONFIG_OPTION,
  "dry-run": { type: "boolean", default: false },
  timeout: { type: "string", default: "300s" },
} as const;

const TIMEOUT = /^(\d{1,9})(ms|s|m|h)?$/;
const TIMEOUT_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `--timeout`: `300s`, `5m`, `1h`, `1500ms`, or a number of seconds; undefined when it is none of those. */
export function parseTimeout(text: string): number | undefined {
  const match = TIMEOUT.exec(text);
  return match ? Number(match[1]) * TIMEOUT_UNIT_MS[match[2] ?? "s"]! : undefined;
}

/** The arguments' problem, if any (the commands' validate). */
export function cutoverArgumentProblem(values: CommandValues, positionals: string[]): string | undefined {
  if (parseTimeout(String(values.timeout ?? "300s")) === undefined) return `--timeout takes a duration (300s, 5m, 1500ms), not '${String(values.timeout)}'`;
  return unexpectedPositionals(positionals);
}

const MARK: Record<CutoverStep["event"], string> = { started: "", progress: "", done: "done", skipped: "skipped", failed: "FAILED", restored: "restored", planned: "dry run" };

export function formatStep(event: CutoverStep): string {
  const head = `[${event.step}/${CUTOVER_STEP_COUNT}] ${event.operation} ${event.name}`;
  if (event.event === "started") return `${head}: ${event.message} ...\n`;
  if (event.event === "progress") return `${head}: ${event.message}\n`;
  return `${head}: ${MARK[event.event]}: ${event.message}\n${event.hint ? `      hint: ${event.hint}\n` : ""}`;
}

/**
 * `pgferry cutover` (without --check) and `pgferry rollback`: the procedure with its progress on
 * stdout; exit 0 when done (or already done), 1 naming the failed step and its cause.
 */
export async function runCutoverCommand(values: CommandValues, io: CommandIo, operation: CutoverOperation = "cutover"): Promise<number> {
  const timeoutMs = parseTimeout(String(values.timeout ?? "300s"));
  if (timeoutMs === undefined) throw new UsageError(`--timeout takes a duration (300s, 5m, 1500ms), not '${String(values.timeout)}'`);
  const config = loadConfig(String(values.config ?? "pgferry.yaml"), io.env);
  if (operation === "rollback") reverseSection(config);
  const dryRun = values["dry-run"] === true;
  const pools = databasePools(config, `pgferry-${operation}`, 4);
  // Progress goes to stdout; the log only says more when asked for (log.level debug/trace).
  const level = config.log.level === "debug" || config.log.level === "trace" ? config.log.level : "warn";
  const log = createLogger({ level, format: config.log.format, destination: io.stderr });
  const controller = new AbortController();
  const release = handleShutdownSignals(() => controller.abort(), () => process.exit(EXIT_FAILURE));
  try {
    io.stdout.write(`pgferry ${operation}${dryRun ? " --dry-run (nothing is changed)" : ""}: pipeline ${config.source.slot}\n`);
    const options = { config, old: pools.source, new: pools.target, dryRun, log, timeoutMs, signal: controller.signal, onStep: (s: CutoverStep) => io.stdout.write(formatStep(s)) };
    const result = await (operation === "cutover" ? cutover(options) : rollback(options));
    if (result.alreadyDone) io.stdout.write(`${operation} already done; nothing to do${result.reverse ? `\n${result.reverse.message}` : ""}\n`);
    else if (result.ok) io.stdout.write(`${operation} ${dryRun ? "dry run: every step can run" : "done"}\n`);
    if (result.failed) {
      const { step, name, cause, hint } = result.failed;
      const restoredNote = dryRun ? "" : " (what it froze was put back; run it again to resume)";
      io.stderr.write(`pgferry ${operation}: ${dryRun ? "would fail at" : "failed at"} step ${step} (${name}): ${cause}${restoredNote}\n${hint ? `hint: ${hint}\n` : ""}`);
    }
    return result.ok ? EXIT_OK : EXIT_FAILURE;
  } finally {
    release();
    await pools.end();
  }
}
