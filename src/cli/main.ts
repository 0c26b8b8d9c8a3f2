/**
 * The `pgferry` command line: `pgferry <command> [options]`. Bad arguments exit 2 with the
 * command's usage line, before anything is read; config problems exit 2 with every problem listed;
 * every other failure exits 1 with one report (errorReport.ts): the database it came from, the
 * message once, a hint, and a stack trace only for a bug.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { closestKey } from "../config/problems.js";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, unexpectedPositionals, type Command, type CommandIo, type CommandValues } from "./command.js";
import { describeError, formatErrorReport, translatePgWarnings } from "./errorReport.js";
import { conflictsCommand } from "./commands/conflicts.js";
import { cutoverCommand } from "./commands/cutover.js";
import { planCommand } from "./commands/plan.js";
import { resyncCommand } from "./commands/resync.js";
import { rollbackCommand } from "./commands/rollback.js";
import { runCommand } from "./commands/run.js";
import { sequencesCommand } from "./commands/sequences.js";
import { slotCommand } from "./commands/slot.js";
import { statusCommand } from "./commands/status.js";
import { verifyCommand } from "./commands/verify.js";

const COMMANDS: readonly Command[] = [runCommand, statusCommand, conflictsCommand, resyncCommand, planCommand, verifyCommand, sequencesCommand, cutoverCommand, rollbackCommand, slotCommand];

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `pgferry ${version()} — replicate a live PostgreSQL database into reorganised schemas`,
    "",
    "Usage: pgferry <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Options:",
    "  -c, --config <file>  config file (default: pgferry.yaml); secrets come from ${ENV} references",
    "  -h, --help           show help (also: pgferry <command> --help)",
    "  -V, --version        print the version",
    "",
    "Exit codes: 0 ok, 1 failure (or differences found by verify), 2 bad usage or invalid config.",
    "",
  ].join("\n");
}

/** node's parseArgs errors, worded for the command line: the option as typed, and what was meant. */
function argumentProblem(error: unknown, command: Command): string {
  const { code, message } = error as { code?: string; message: string };
  const names = Object.keys(command.options).concat("help").map((name) => `--${name}`);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const option = /'([^']+)'/.exec(message)?.[1] ?? "";
    const meant = option.startsWith("--") ? closestKey(option.split("=")[0]!, names) : undefined;
    return `unknown option ${option}${meant ? ` (did you mean ${meant}?)` : ""}`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const option = /--[\w-]+/.exec(message)?.[0] ?? "an option";
    if (/does not take an argument/.test(message)) return `option ${option} takes no value`;
    if (/ambiguous/.test(message)) return `option ${option} needs a value (write ${option}=<value> for a value that starts with a dash)`;
    return `option ${option} needs a value`;
  }
  return message;
}

export async function main(argv: string[], io: CommandIo): Promise<number> {
  translatePgWarnings(io.stderr);
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    io.stdout.write(help());
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === "-V" || first === "--version") {
    io.stdout.write(`${version()}\n`);
    return EXIT_OK;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    const meant = closestKey(first, COMMANDS.map((c) => c.name));
    io.stderr.write(`pgferry: unknown command '${first}'${meant ? ` (did you mean ${meant}?)` : ""}\n\n${help()}`);
    return EXIT_USAGE;
  }
  const usage = (problem: string): number => {
    io.stderr.write(`pgferry ${command.name}: ${problem}\nusage: ${command.usage}\n`);
    return EXIT_USAGE;
  };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (error) {
    return usage(argumentProblem(error, command));
  }
  if (parsed.values.help) {
    io.stdout.write(`${command.summary}\nusage: ${command.usage}\n`);
    return EXIT_OK;
  }
  const values = parsed.values as CommandValues;
  const problem = command.validate ? command.validate(values, parsed.positionals) : unexpectedPositionals(parsed.positionals);
  if (problem !== undefined) return usage(problem);
  try {
    return await command.run(values, parsed.positionals, io);
  } catch (error) {
    if (error instanceof UsageError) return usage(error.message);
    // Every failure, whichever command and database: one report (errorReport.ts).
    const report = describeError(error);
    io.stderr.write(formatErrorReport(command.name, report));
    return report.kind === "config" ? EXIT_USAGE : EXIT_FAILURE;
  }
}
