/**
 * The `pgferry` command line: `pgferry <command> [options]`. Config problems exit 2 with every
 * problem listed; other failures exit 1 with the error kind and the operator hint.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { PgferryError } from "../errors.js";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type Command, type CommandIo } from "./command.js";
import { planCommand } from "./commands/plan.js";
import { resyncCommand } from "./commands/resync.js";
import { runCommand } from "./commands/run.js";
import { slotCommand } from "./commands/slot.js";
import { statusCommand } from "./commands/status.js";
import { verifyCommand } from "./commands/verify.js";

const COMMANDS: readonly Command[] = [runCommand, statusCommand, resyncCommand, planCommand, verifyCommand, slotCommand];

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
    "Exit codes: 0 ok, 1 failure, 2 bad usage or invalid config.",
    "",
  ].join("\n");
}

export async function main(argv: string[], io: CommandIo): Promise<number> {
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
    io.stderr.write(`pgferry: unknown command '${first}'\n\n${help()}`);
    return EXIT_USAGE;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (error) {
    io.stderr.write(`pgferry ${command.name}: ${(error as Error).message}\nusage: ${command.usage}\n`);
    return EXIT_USAGE;
  }
  if (parsed.values.help) {
    io.stdout.write(`${command.summary}\nusage: ${command.usage}\n`);
    return EXIT_OK;
  }
  try {
    return await command.run(parsed.values as Record<string, string | boolean | undefined>, parsed.positionals, io);
  } catch (error) {
    if (error instanceof PgferryError) {
      io.stderr.write(`pgferry ${command.name}: ${error.kind} error: ${error.message}\n`);
      if (error.hint) io.stderr.write(`hint: ${error.hint}\n`);
      return error.kind === "config" ? EXIT_USAGE : EXIT_FAILURE;
    }
    io.stderr.write(`pgferry ${command.name}: ${(error as Error).stack ?? String(error)}\n`);
    return EXIT_FAILURE;
  }
}
