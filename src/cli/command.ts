/** The shape of a CLI command: its own options, parsed by node's parseArgs, and a run function. */
import type { ParseArgsConfig } from "node:util";

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  /** Resolves to the process exit code. */
  run(values: Record<string, string | boolean | undefined>, positionals: string[], io: CommandIo): Promise<number>;
}

/** Exit codes: 0 ok; 1 the command ran and found a problem (verify mismatch, pipeline failure); 2 bad usage or config. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export const CONFIG_OPTION = {
  config: { type: "string", short: "c", default: "pgferry.yaml" },
} as const;
