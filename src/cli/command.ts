/** The shape of a CLI command: its own options, parsed by node's parseArgs, and a run function. */
import type { ParseArgsConfig } from "node:util";

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export type CommandValues = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  /**
   * Checks the arguments before anything is read or connected: a problem (a positional the command
   * does not take, a value that is not a number, options that exclude each other) in one sentence,
   * printed with the usage line, exit 2. Without it the command takes no positional arguments.
   */
  validate?(values: CommandValues, positionals: string[]): string | undefined;
  /** Resolves to the process exit code. */
  run(values: CommandValues, positionals: string[], io: CommandIo): Promise<number>;
}

/** Exit codes: 0 ok; 1 the command ran and found a problem (verify mismatch, pipeline failure); 2 bad usage or config. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export const CONFIG_OPTION = {
  config: { type: "string", short: "c", default: "pgferry.yaml" },
} as const;

/** Bad arguments found while a command runs: printed with the command's usage line, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The problem with positional arguments a command does not take, if any. */
export function unexpectedPositionals(positionals: readonly string[]): string | undefined {
  if (positionals.length === 0) return undefined;
  return `unexpected argument${positionals.length > 1 ? "s" : ""} ${positionals.map((p) => `'${p}'`).join(" ")}`;
}
