/**
 * `npm run bench`: pgferry side by side with native logical replication, in one run, on throwaway
 * local clusters (a source with wal_level=logical and a target per system, all with durable
 * commits). See options.ts for the flags; results go to stdout (markdown or JSON) and
 * bench/results/<date>.json.
 */
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { REPO_ROOT } from "../repoRoot.js";
import { Cleanup } from "./cleanup.js";
import { summarizeProfile, type ProfileSummary } from "./cpuProfile.js";
import { CLUSTER_SETTINGS, createTemplate, startPair, TEMPLATE_DB, type ClusterPair } from "./clusters.js";
import { describeEnvironment, loadAverageNow } from "./environment.js";
import { fixtureSize } from "./fixture.js";
import { parseOptions, USAGE, UsageError, type BenchOptions } from "./options.js";
import { seconds } from "./poll.js";
import { maxRateSummary, runMaxRate } from "./maxRate.js";
import { GROWTH_LIMIT_SECONDS, HEARTBEAT_MS, PHASE_WARMUP_SECONDS, RATE_SESSIONS, SEARCH_STEPS, WARMUP_SECONDS } from "./rateSearch.js";
import { combineRuns } from "./repeatedResult.js";
import { evaluateGoals, failed, headline, markdownReport, type BenchResult } from "./report.js";
import { runReverseScenarios, type ReverseScenarios } from "./reverseScenario.js";
import { targetIndexNote } from "./targetIndexes.js";
import { prepareNative, preparePgferry, runCopyPipe, runReorg, type BenchContext } from "./scenarios.js";
import type { Scenario } from "./session.js";
import type { SystemResult } from "./systemRun.js";

const RESULTS_DIR = join(REPO_ROOT, "bench/results");

/** Workload transactions per second in the lag scenario (8 changes each). */
const LAG_RATE = 100;

async function pgferryVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** Snapshot, drain and lag (those asked for), native then pgferry, on one initial copy per system. */
async function runOneWay(ctx: BenchContext, nativePair: ClusterPair, pgferryPair: ClusterPair): Promise<SystemResult[]> {
  const systems = [await prepareNative(ctx, nativePair), await preparePgferry(ctx, pgferryPair)];
  // Scenario by scenario, native then pgferry: load from elsewhere on the machine hits both alike.
  for (const system of systems) await system.run.snapshot();
  for (const scenario of ["drain", "lag"] as const) {
    if (!ctx.session.scenarios.has(scenario)) continue;
    for (const system of systems) {
      ctx.cleanup.checkInterrupted();
      await system.run[scenario]();
    }
  }
  if (ctx.session.scenarios.has("maxrate")) await runMaxRate(systems.map((s) => s.run), () => ctx.cleanup.checkInterrupted());
  const results: SystemResult[] = [];
  for (const system of systems) {
    results.push(await system.run.finish());
    await system.drop();
  }
  return results;
}

/** `outputDir`: where this run's pgferry processes keep their logs (and CPU profiles); made here. */
async function run(options: BenchOptions, cleanup: Cleanup, log: (line: string) => void, outputDir: string): Promise<BenchResult> {
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = loadAverageNow();
  log(`starting a source and a target cluster per system (scale ${options.scale}, scenarios: ${[...options.scenarios].join(", ")})`);
  const [nativePair, pgferryPair] = await Promise.all([startPair("native", cleanup), startPair("pgferry", cleanup)]);

  const size = fixtureSize(options.scale);
  log(`generating the fixture in both sources (${size.memoryEntries} memory entries with embeddings, ${size.events} events, ...)`);
  const generateStarted = performance.now();
  const [fixture] = await Promise.all([createTemplate(nativePair.source, size, cleanup), createTemplate(pgferryPair.source, size, cleanup)]);
  const generateSeconds = seconds(generateStarted);
  log(`fixture: ${fixture.rows} rows, ${(fixture.bytes / 1024 ** 2).toFixed(0)} MB in ${generateSeconds.toFixed(1)} s`);

  await mkdir(outputDir, { recursive: true });
  const outputs = { dir: outputDir, profile: options.profile };
  const backlogTransactions = Math.max(100, Math.round(60_000 * options.scale));
  const ctx: BenchContext = {
    cleanup,
    synchronousCommit: options.synchronousCommit,
    targetIndexes: options.targetIndexes,
    outputs,
    session: {
      scenarios: options.scenarios,
      fixture,
      backlogTransactions,
      lagSeconds: options.lagSeconds,
      lagRate: LAG_RATE,
      rateSeconds: options.rateSeconds,
      timeoutMs: Math.max(600_000, 600_000 * options.scale),
      log,
    },
  };

  const copyPipe = options.scenarios.has("snapshot") ? await runCopyPipe(ctx, nativePair) : undefined;
  cleanup.checkInterrupted();
  // The one-way scenarios share one initial copy per system; the two-way ones have databases of their own.
  const oneWay = (["snapshot", "drain", "lag", "maxrate"] as const).some((s) => options.scenarios.has(s));
  const results = oneWay ? await runOneWay(ctx, nativePair, pgferryPair) : [{ system: "native" }, { system: "pgferry" }];
  const [native, pgferry] = results as [SystemResult, SystemResult];
  const maxRate = maxRateSummary(pgferry, native);
  cleanup.checkInterrupted();
  const reorg = options.scenarios.has("snapshot") ? await runReorg(ctx, pgferryPair) : undefined;
  cleanup.checkInterrupted();
  // The reverse pipeline's scenarios last, on databases of their own: the one-way figures are taken as before.
  const twoWay: ReverseScenarios | undefined =
    options.scenarios.has("reverse") || options.scenarios.has("bidirectional") ? await runReverseScenarios(ctx, { native: nativePair, pgferry: pgferryPair }, size) : undefined;
  if (twoWay?.reverse && pgferry.drain) twoWay.reverse.forwardDrainChangesPerSecond = pgferry.drain.changesPerSecond;

  const cpuProfiles: ProfileSummary[] = [];
  const profiles = [...(pgferry.cpuProfiles ?? []), ...(twoWay?.twoWay.flatMap((s) => s.cpuProfiles ?? []) ?? [])];
  for (const file of profiles) cpuProfiles.push(await summarizeProfile(file).catch((error: unknown) => ({ file, totalMs: 0, idlePercent: 0, top: [], error: String(error) })));

  const environment = await describeEnvironment(pgferryPair.source.url(TEMPLATE_DB), await pgferryVersion(), loadAtStart);
  const notes = [
    "Each system has its own source and target cluster; all clusters have the same settings (fsync on, synchronous_commit on). " +
      "pgferry runs with its default snapshot/apply settings; " +
      `both apply with synchronous_commit = '${options.synchronousCommit}'${options.synchronousCommit === "off" ? " (the default of both: a position is acknowledged once the target's WAL flush passes it)" : " (each COMMIT flushed before it returns)"}; ` +
      "the native subscription uses text format and 4 table-sync workers. Scenarios alternate native, pgferry; each is followed by VACUUM and CHECKPOINT.",
  ];
  const scenarioNotes: [Scenario, string][] = [
    [
      "snapshot",
      `Snapshot: from starting pgferry (the CLI process) or CREATE SUBSCRIPTION until every table is ready; MB = heap + TOAST of the source tables. ` +
        `The binary COPY pipe is the floor: no snapshot export, no state, 2 tables at a time.`,
    ],
    [
      "drain",
      `Backlog: ${backlogTransactions.toLocaleString("en-US")} transactions × 8 row changes (event-log inserts, partitioned and keyless inserts, ` +
        `hot-row jsonb updates, a delete, an embedding update), built while replication is stopped; timed from starting replication ` +
        `(pgferry: spawning the process; native: ALTER SUBSCRIPTION ENABLE) until a marker row committed after it is on the target. ` +
        `Parts of it: until streaming (pgferry logs "streaming"; the native apply worker has received WAL) and until the first backlog change is visible ` +
        `on the target (polled every 10 ms). wal_retrieve_retry_interval is 100 ms on every bench cluster, so PostgreSQL 15's launcher does not hold ` +
        `the re-enabled native worker back for its default 5 s. ` +
        `Drain CPU: user + system seconds of the pgferry process, the source walsender and the target apply backend(s).`,
    ],
    [
      "lag",
      `Lag: ${LAG_RATE} transactions/s (${LAG_RATE * 8} changes/s) for ${options.lagSeconds} s; a heartbeat row every 100 ms, target polled every 20 ms ` +
        `(figures err high by up to 20 ms).`,
    ],
    [
      "maxrate",
      `Max rate: the source's rate is ${RATE_SESSIONS} sessions running the same transactions unthrottled (durable commits) for ${options.rateSeconds} s ` +
        `(every window after ${WARMUP_SECONDS} s of warm-up) on each system's source while that system replicates; the lower of the two is the common rate ` +
        `both are then paced at (the same sessions on one schedule), with the lag probe as above but a heartbeat every ${HEARTBEAT_MS} ms. ` +
        `A window is sustained when every heartbeat arrived, the median lag of its last quarter is at most ${GROWTH_LIMIT_SECONDS * 1000} ms above ` +
        `its first quarter's (a growing lag means the system falls behind) and p99 ≤ 100 ms. Sustained at the common rate ends the search; ` +
        `otherwise ${SEARCH_STEPS} windows bisect below it (half, then geometric middles). Each window ends when a marker committed after it is on the target. ` +
        `Before the first window of each part, a fresh replicator is warmed up by ${PHASE_WARMUP_SECONDS} s of one unthrottled session (a new pgferry process runs unoptimised code at first).`,
    ],
  ];
  const oneWayNotes = [...scenarioNotes.filter(([s]) => options.scenarios.has(s)).map(([, note]) => note), "Peak RSS: VmHWM of the pgferry process, one process per scenario."];
  if (options.scenarios.has("snapshot")) oneWayNotes.push(targetIndexNote(options.targetIndexes));

  notes.push(
    ...(oneWay ? oneWayNotes : []),
    ...(twoWay?.reverse
      ? [
          `Reverse drain (new → old): each system on fresh databases, the old one cloned from the fixture and the new one filled by the forward ` +
            `direction's copy; the same backlog (${backlogTransactions.toLocaleString("en-US")} × 8 changes, bench_tx on the new tables) written on the new side ` +
            `while the reverse is stopped, timed from starting it (pgferry: spawning \`pgferry run --direction reverse\`; native: ALTER SUBSCRIPTION ENABLE ` +
            `of a subscription in the old database to a publication in the new one) until a marker row committed after it is in the old database. ` +
            `pgferry's forward process keeps running (it reads the reverse's writes in the old database's WAL and drops them by origin); ` +
            `native's forward subscription is disabled (PostgreSQL 15 has no origin filter, so both subscriptions on would loop).`,
        ]
      : []),
    ...(twoWay?.bidirectional
      ? [
          `Bidirectional lag (pgferry only): both directions running (two processes, one config with a reverse section), each side writing ` +
            `${LAG_RATE} transactions/s (8 changes each, disjoint rows: bench_lane_tx) for ${options.lagSeconds} s, and a heartbeat each way every 100 ms, ` +
            `measured as the steady lag (the other side polled every 20 ms).`,
        ]
      : []),
    `pgferry's logs are in ${options.repeat > 1 ? dirname(outputs.dir) : outputs.dir}${options.repeat > 1 ? " (run-<n>/ per run)" : ""}.`,
    ...(options.profile ? [`CPU profiling was on (slower figures); profiles in ${outputs.dir}.`] : []),
  );
  return {
    startedAt: startedAt.toISOString(),
    wallSeconds: seconds(t0),
    scale: options.scale,
    scenarios: [...options.scenarios],
    environment,
    fixture: { ...fixture, generateSeconds },
    settings: { ...CLUSTER_SETTINGS, backlogTransactions, lagRate: LAG_RATE, lagSeconds: options.lagSeconds, rateSeconds: options.rateSeconds, rateSessions: RATE_SESSIONS, profile: options.profile, synchronousCommit: options.synchronousCommit, targetIndexes: options.targetIndexes },
    ...(copyPipe ? { copyPipe } : {}),
    pgferry,
    native,
    ...(maxRate ? { maxRate } : {}),
    ...(reorg ? { reorg } : {}),
    ...(twoWay?.reverse ? { reverse: twoWay.reverse } : {}),
    ...(twoWay?.bidirectional ? { bidirectional: twoWay.bidirectional } : {}),
    ...(twoWay ? { twoWay: twoWay.twoWay } : {}),
    ...headline(pgferry, native, twoWay?.reverse, twoWay?.bidirectional),
    goals: evaluateGoals([{ pgferry, native }]),
    ...(cpuProfiles.length > 0 ? { cpuProfiles } : {}),
    notes,
  };
}

async function main(argv: string[]): Promise<number> {
  let options: BenchOptions | "help";
  try {
    options = parseOptions(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  const t0 = performance.now();
  const write = (line: string) => process.stderr.write(`[bench ${seconds(t0).toFixed(0).padStart(4)} s] ${line}\n`);
  const cleanup = new Cleanup();
  // After Ctrl-C, what the interrupted scenario says on its way down is noise.
  const log = (line: string) => {
    if (!cleanup.interrupted) write(line);
  };
  const releaseSignals = cleanup.onSignals(write);
  try {
    const runs: BenchResult[] = [];
    // pgferry's logs, and its CPU profiles with --profile, kept after the bench: a folder per run.
    const outputs = await mkdtemp(join(tmpdir(), "pgferry-bench-"));
    for (let i = 1; i <= options.repeat; i += 1) {
      cleanup.checkInterrupted();
      if (options.repeat > 1) log(`run ${i} of ${options.repeat}`);
      runs.push(await run(options, cleanup, log, options.repeat > 1 ? join(outputs, `run-${i}`) : outputs));
      // This run's clusters go now: the next one starts from nothing, and memory is not held twice.
      await cleanup.runAll(write);
    }
    const wallSeconds = seconds(t0);
    const result = runs.length === 1 ? runs[0]! : combineRuns(runs, wallSeconds);
    await mkdir(RESULTS_DIR, { recursive: true });
    const stamp = result.startedAt.replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
    const file = join(RESULTS_DIR, `${stamp}${options.scale === 1 ? "" : `-scale${options.scale}`}${runs.length === 1 ? "" : `-repeat${runs.length}`}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(options.json ? `${JSON.stringify(result, null, 2)}\n` : markdownReport(runs, runs.length === 1 ? runs[0]!.wallSeconds : wallSeconds));
    log(`results written to ${relative(process.cwd(), file)}`);
    return runs.some(failed) ? 1 : 0;
  } catch (error) {
    log(`bench failed: ${(error as Error).stack ?? String(error)}`);
    return 1;
  } finally {
    log("removing the bench clusters");
    await cleanup.runAll(write);
    releaseSignals();
  }
}

process.exitCode = await main(process.argv.slice(2));
