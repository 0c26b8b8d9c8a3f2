/**
 * `npm run demo`: two throwaway clusters, the old flat project seeded in the source, pgferry running
 * config/reorg.example.yaml into the target's domain schemas under live writes, and a live view.
 * Ctrl-C (or SIGTERM) stops the load, drains pgferry, stops the control server and removes the
 * clusters (`--keep` leaves them); a second one skips the drain. Exit 0 when stopped, 1 on an error.
 */
import { chmod, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import pg from "pg";
import { handleShutdownSignals } from "../../src/cli/signals.js";
import { REPO_ROOT } from "../repoRoot.js";
import { DATABASE, prepareDatabases, sourceRowCount, startClusters } from "./demoDatabases.js";
import { parseDemoOptions, USAGE, UsageError, type DemoOptions } from "./demoOptions.js";
import { DemoRun, describeError, StopRequested, waitForAbort } from "./demoRun.js";
import { startInProcessDaemon } from "./inProcessDaemon.js";
import { LiveView } from "./liveView.js";
import { startPacedLoad } from "./pacedLoad.js";
import { ViewSampler } from "./viewSampler.js";

/** The demo finds the example config from wherever it is started. */
const CONFIG_FILE = join(REPO_ROOT, "config", "reorg.example.yaml");
/** The load stops by itself after an hour, so a forgotten demo does not write forever. */
const LOAD_SECONDS = 3_600;

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_FORCED = 130;

const out = process.stdout;

async function seconds<T>(work: Promise<T>): Promise<{ value: T; seconds: string }> {
  const started = Date.now();
  const value = await work;
  return { value, seconds: ((Date.now() - started) / 1000).toFixed(1) };
}

/** Steps 1–5; returns when a stop is requested, throws when a step or pgferry fails. */
async function runSteps(run: DemoRun): Promise<void> {
  const { options } = run;
  run.say(`[1/5] starting two throwaway PostgreSQL clusters in ${run.demoDir}`);
  // Awaited even on a stop (a few seconds): a cluster still starting would be missed by the clean-up.
  const { value: clusters, seconds: clusterSeconds } = await seconds(startClusters(run.demoDir, (c) => run.clusters.push(c)));
  run.say(`      source ${clusters.source.url(DATABASE)}   target ${clusters.target.url(DATABASE)}   (${clusterSeconds} s)`);

  run.say(`[2/5] seeding the old flat project (27 tables, vectors included, --scale ${options.scale}) and creating the domain schemas`);
  const { value: db, seconds: seedSeconds } = await seconds(run.untilStopped(prepareDatabases(clusters.source, clusters.target, options.scale)));
  const rows = await run.untilStopped(sourceRowCount(db.sourceUrl));
  run.say(`      ${rows.toLocaleString("en-US")} rows in the source's public schema; 8 empty domain schemas in the target (${seedSeconds} s)`);

  const shownConfig = relative(process.cwd(), CONFIG_FILE);
  run.say(`[3/5] starting pgferry with ${shownConfig.startsWith("..") ? CONFIG_FILE : shownConfig} (in this process)`);
  // Not abandoned on a stop: once listening, it is stopped like the rest (starting takes milliseconds).
  run.daemon = await startInProcessDaemon({
    configFile: CONFIG_FILE,
    env: { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl },
    port: options.port,
    logFile: run.logFile,
  });
  const base = `http://127.0.0.1:${run.daemon.address.port}`;
  const context = { statusUrl: `${base}/`, metricsUrl: `${base}/metrics`, logFile: run.logFile, startedAt: Date.now() };
  if (run.daemon.address.port !== options.port && options.port !== 0) run.say(`      port ${options.port} is in use; the control server took ${run.daemon.address.port}`);
  run.say(`      status page ${context.statusUrl}   metrics ${context.metricsUrl}   status JSON ${base}/v1/status`);
  run.say(`      pgferry's log: ${run.logFile}`);

  run.say(`[4/5] driving live writes on the source: ${options.rate} transactions/s over all 27 tables (inserts, updates, deletes)`);
  run.loadPool = new pg.Pool({ connectionString: db.sourceUrl, max: 2, application_name: "pgferry-demo-load" });
  run.loadPool.on("error", () => undefined); // an idle client cut by a stopping server; the load's own query reports
  const load = startPacedLoad(run.loadPool, { rate: options.rate, transactions: Math.round(options.rate * LOAD_SECONDS), signal: run.loadController.signal });
  run.load = load;
  const loadFailed = load.done.then(
    (committed) => {
      if (!run.loadController.signal.aborted) run.say(`the source load finished (${committed} transactions committed); pgferry keeps streaming`);
      return new Promise<never>(() => undefined); // finishing is not an end of the demo
    },
    (error: unknown) => {
      throw new Error(`the source load failed: ${describeError(error)}`, { cause: error });
    },
  );

  run.say("[5/5] live view (Ctrl-C stops everything)");
  run.view = new LiveView({ out, sampler: new ViewSampler(run.daemon.control, load.started), context });
  run.view.start();

  const pipelineEnded = run.daemon.finished.then(() => {
    throw new Error("pgferry stopped without being asked to");
  });
  await Promise.race([waitForAbort(run.stopRequested.signal), pipelineEnded, loadFailed]);
}

async function runDemo(options: DemoOptions): Promise<number> {
  const base = options.dir ? resolve(options.dir) : tmpdir();
  const demoDir = await mkdtemp(join(base, "pgferry-demo-"));
  await chmod(demoDir, 0o755); // the postgres OS user runs the servers in here (mkdtemp makes it 0700)
  const run = new DemoRun(options, demoDir, join(demoDir, "pgferry.log"));
  out.write("pgferry demo\n");

  let forcing = false;
  const release = handleShutdownSignals(
    (signal) => {
      run.say(`${signal}: stopping (send again to skip the drain)`);
      run.stopRequested.abort();
    },
    (signal) => {
      if (forcing) process.exit(EXIT_FORCED);
      forcing = true;
      run.say(`${signal}: forced; stopping the clusters now (send again to exit at once)`);
      void run.view?.stop();
      run.view = undefined;
      void run.removeClusters(false).finally(() => process.exit(EXIT_FORCED));
    },
  );
  try {
    await runSteps(run);
    await run.cleanUp(false);
    run.say(options.keep ? "stopped pgferry; the clusters were kept" : "stopped; nothing is left behind");
    return EXIT_OK;
  } catch (error) {
    if (error instanceof StopRequested) {
      await run.cleanUp(false);
      run.say(`stopped before pgferry started; ${options.keep ? "the clusters were kept" : "nothing is left behind"}`);
      return EXIT_OK;
    }
    await run.view?.stop();
    run.view = undefined;
    process.stderr.write(`demo failed: ${describeError(error)}\n`);
    await run.cleanUp(true).catch((cleanupError: unknown) => run.say(`clean-up failed: ${describeError(cleanupError)}`));
    return EXIT_FAILURE;
  } finally {
    release();
  }
}

async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseDemoOptions(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`demo: ${error.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (options === "help") {
    out.write(USAGE);
    return EXIT_OK;
  }
  return runDemo(options);
}

// Exit explicitly: everything the demo started is stopped by now, and a socket a driver forgot must not keep it alive.
process.exit(await main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`demo: ${describeError(error)}\n`);
  return EXIT_FAILURE;
}));
