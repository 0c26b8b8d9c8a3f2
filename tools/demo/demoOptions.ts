/** `npm run demo -- [flags]` / `node dist-tools/tools/demo/main.js [flags]`: what the demo runs and where. */
import { parseArgs } from "node:util";

export interface DemoOptions {
  /** Leave both clusters (and the demo directory) behind on exit, and print how to reach them. */
  keep: boolean;
  /** Seed size: multiplies every table's row count of the old project (1 ≈ 6,000 rows). */
  scale: number;
  /** Control server port (status page, /metrics, /v1/status); a free one is taken when it is in use. */
  port: number;
  /** Source transactions per second of the live write load. */
  rate: number;
  /** Parent of the demo directory (clusters and pgferry's log). Default: the OS temp dir. */
  dir: string | undefined;
}

export const USAGE = `Usage: npm run demo -- [options]   (or: node dist-tools/tools/demo/main.js [options])

Starts two throwaway PostgreSQL clusters, seeds an old flat project (27 tables, pgvector
embeddings) in the source, runs pgferry with config/reorg.example.yaml into the target's domain
schemas, drives live writes and shows snapshot progress, then changes/s and lag. Ctrl-C stops
everything and removes the clusters.

Options:
  --keep           leave the clusters running and their directories in place on exit
  --scale <n>      seed size; 1 = about 6,000 rows (default 5)
  --port <p>       control server port: status page, /metrics, /v1/status (default 9187;
                   a free port is used when it is taken)
  --rate <n>       source transactions per second of the live load (default 40)
  --dir <path>     parent of the demo directory (default: the OS temp dir); when run as root it
                   must be reachable by the postgres OS user, which runs the servers
  -h, --help       show this help
`;

export class UsageError extends Error {}

function number(name: string, text: string, min: number, max: number, integer = false): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name}: expected ${integer ? "an integer" : "a number"} in [${min}, ${max}], got ${text}`);
  }
  return value;
}

export function parseDemoOptions(argv: string[]): DemoOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        keep: { type: "boolean", default: false },
        scale: { type: "string", default: "5" },
        port: { type: "string", default: "9187" },
        rate: { type: "string", default: "40" },
        dir: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return "help";
  return {
    keep: values.keep,
    scale: number("scale", values.scale, 0.01, 100),
    port: number("port", values.port, 0, 65535, true),
    rate: number("rate", values.rate, 1, 10_000),
    dir: values.dir,
  };
}
