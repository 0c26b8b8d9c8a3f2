/** `npm run bench -- [flags]`: what to run and how big. */
import { parseArgs } from "node:util";
import type { Scenario } from "./session.js";
import { TARGET_INDEX_SETS, type TargetIndexes } from "./targetIndexes.js";

export interface BenchOptions {
  /** Fixture and backlog size; 1 ≈ 200 MB of tables and 60k backlog transactions. */
  scale: number;
  scenarios: Set<Scenario>;
  json: boolean;
  /** Seconds of steady writes in the lag and bidirectional scenarios. */
  lagSeconds: number;
  /** Seconds of each window of the maxrate scenario. */
  rateSeconds: number;
  /** Write V8 CPU profiles of the pgferry processes and list their hot spots. */
  profile: boolean;
  /** synchronous_commit of both systems' apply: the native subscription's and pgferry's `apply.synchronousCommit`. */
  synchronousCommit: "on" | "off";
  /** Whole runs (fresh clusters each); figures are reported as median (min–max) when more than 1. */
  repeat: number;
  /** Secondary indexes on the target tables during the snapshot (targetIndexes.ts). */
  targetIndexes: TargetIndexes;
}

export const USAGE = `Usage: npm run bench -- [options]

Compares pgferry with native logical replication (CREATE PUBLICATION/SUBSCRIPTION) on throwaway
local clusters: initial snapshot, backlog drain, steady lag, the source's maximum write rate and the
highest rate each keeps p99 lag ≤ 100 ms at, pgferry's peak memory; and pgferry's
reverse pipeline (new → old): its backlog drain beside native replication in that direction, and the
lag of each direction with both running and both sides taking writes.

Options:
  --scale <n>          fixture size; 1 = about 200 MB and a 60k-transaction backlog (default 1)
  --only <scenario>    snapshot, drain, lag, reverse, bidirectional or maxrate; repeat or
                       comma-separate (default: all)
  --json               print the result as JSON instead of the markdown table
  --lag-seconds <n>    length of the steady-lag windows, one way and bidirectional (default 30)
  --rate-seconds <n>   length of each window of the maxrate scenario (the source's unthrottled
                       rate, then paced windows: at most 5 per system) (default 10)
  --profile            CPU-profile the pgferry processes (slower) and list their hot spots
  --synchronous-commit <off|on>
                       synchronous_commit of both systems' apply: the native subscription's and
                       pgferry's apply.synchronousCommit (default off, the default of both; each
                       then acknowledges a position once the target's WAL flush passes it)
  --repeat <n>         run the scenarios n times, each run on fresh clusters; every figure is
                       reported as median (min–max), ratios taken within each run (default 1)
  --target-indexes <fixture|realistic>
                       the target tables' secondary indexes, the same for both systems: the
                       fixture's two btree indexes, or realistic ones as well (HNSW on the
                       embeddings, GIN, expression, partial, composite btree) (default fixture)
  -h, --help           show this help

Results are also written to bench/results/<date>.json.
`;

const SCENARIOS: readonly Scenario[] = ["snapshot", "drain", "lag", "reverse", "bidirectional", "maxrate"];

export class UsageError extends Error {}

export function parseOptions(argv: string[]): BenchOptions | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        scale: { type: "string", default: "1" },
        only: { type: "string", multiple: true },
        json: { type: "boolean", default: false },
        "lag-seconds": { type: "string", default: "30" },
        "rate-seconds": { type: "string", default: "10" },
        profile: { type: "boolean", default: false },
        "synchronous-commit": { type: "string", default: "off" },
        repeat: { type: "string", default: "1" },
        "target-indexes": { type: "string", default: "fixture" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values } = parsed;
  if (values.help) return "help";
  const scale = Number(values.scale);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 100) throw new UsageError(`--scale: expected a number in (0, 100], got ${values.scale}`);
  const lagSeconds = Number(values["lag-seconds"]);
  if (!Number.isFinite(lagSeconds) || lagSeconds < 1 || lagSeconds > 3600) throw new UsageError(`--lag-seconds: expected 1..3600, got ${values["lag-seconds"]}`);
  const rateSeconds = Number(values["rate-seconds"]);
  if (!Number.isFinite(rateSeconds) || rateSeconds < 2 || rateSeconds > 600) throw new UsageError(`--rate-seconds: expected 2..600, got ${values["rate-seconds"]}`);
  const synchronousCommit = values["synchronous-commit"];
  if (synchronousCommit !== "on" && synchronousCommit !== "off") throw new UsageError(`--synchronous-commit: expected off or on, got ${synchronousCommit}`);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 50) throw new UsageError(`--repeat: expected a whole number in 1..50, got ${values.repeat}`);
  const targetIndexes = values["target-indexes"] as TargetIndexes;
  if (!TARGET_INDEX_SETS.includes(targetIndexes)) throw new UsageError(`--target-indexes: expected ${TARGET_INDEX_SETS.join(" or ")}, got ${targetIndexes}`);
  const requested = (values.only ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
  for (const name of requested) {
    if (!SCENARIOS.includes(name as Scenario)) throw new UsageError(`--only: unknown scenario '${name}' (expected ${SCENARIOS.join(", ")})`);
  }
  const scenarios = new Set<Scenario>(requested.length > 0 ? (requested as Scenario[]) : SCENARIOS);
  return { scale, scenarios, json: values.json, lagSeconds, rateSeconds, profile: values.profile, synchronousCommit, repeat, targetIndexes };
}
