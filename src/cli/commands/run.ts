/**
 * `pgferry run`: the daemon. A configuration that can never connect (a wrong password, an unknown
 * database or role, a TLS mismatch) ends it at once, with one report; a database that is down is an
 * outage, which the pipeline waits out however long it lasts. Then snapshot, then stream until
 * stopped, the control server alongside. A failure is logged once, as one line (errorReport.ts).
 */
import { loadConfig, type Config } from "../../config/index.js";
import { directionConfig, type Direction } from "../../config/directions.js";
import { ConfigError } from "../../errors.js";
import { periodically, sequenceGaps, startSequenceSync } from "../../cutover/sequences.js";
import type { PipelineMetrics } from "../../control/metrics.js";
import { ControlPlane } from "../../control/controlPlane.js";
import { createLogger, type Logger } from "../../log/logger.js";
import { classify } from "../../pipeline/errorPolicy.js";
import { createPipeline, createResyncEngine, wire, type Wiring } from "../../daemon.js";
import { resyncApi } from "../resyncApi.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, unexpectedPositionals, type Command } from "../command.js";
import { recordDaemonAddress } from "../daemonAddress.js";
import { describeError, reportLogFields, withQuietErrors } from "../errorReport.js";
import { handleShutdownSignals } from "../signals.js";

export const runCommand: Command = {
  name: "run",
  summary: "run the pipeline: snapshot, then stream changes until stopped",
  usage: "pgferry run [--config pgferry.yaml] [--direction forward|reverse|both]",
  options: { ...CONFIG_OPTION, direction: { type: "string", default: "forward" } },
  validate(values, positionals) {
    if (!RUN_DIRECTIONS.includes(String(values.direction))) return `--direction must be forward, reverse or both, not '${String(values.direction)}'`;
    return unexpectedPositionals(positionals);
  },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const asked = String(values.direction);
    const directions: Direction[] = asked === "both" ? ["forward", "reverse"] : [asked as Direction];
    const base = withQuietErrors(createLogger({ level: config.log.level, format: config.log.format, destination: io.stdout }));
    if (directions.includes("reverse") && !config.reverse) {
      logFailure(base, "cannot start", new ConfigError(String(values.config), ["reverse: --direction reverse needs a reverse section in the config (docs/reverse.md)"]));
      return EXIT_USAGE;
    }
    const controller = new AbortController();
    const release = handleShutdownSignals(
      (signal) => {
        base.info({ signal }, "shutdown requested; draining (send again to force)");
        controller.abort();
      },
      (signal) => {
        base.warn({ signal }, "forced exit; unacknowledged changes stay in the slot");
        process.exit(EXIT_FAILURE);
      },
    );
    try {
      // Both directions in one process are two independent daemons: own pools, control server, metrics.
      const log = (direction: Direction) => (config.reverse ? base.child({ direction }) : base);
      const codes = await Promise.all(directions.map((direction) => runDirection(config, direction, log(direction), controller)));
      return Math.max(...codes);
    } finally {
      release();
    }
  },
};

const RUN_DIRECTIONS = ["forward", "reverse", "both"];

/** One direction's daemon until stopped; with `both`, a failure of one stops the other too. */
async function runDirection(config: Config, direction: Direction, log: Logger, controller: AbortController): Promise<number> {
  const view = directionConfig(config, direction);
  {
    // Endpoints, pools and stores, made once; the resync engine outlives retries of the pipeline.
    const wiring = wire(config, direction);
    const unreachable = await refusedConnection(wiring);
    if (unreachable !== undefined) {
      await wiring.close();
      logFailure(log, "cannot start", unreachable);
      controller.abort();
      return EXIT_FAILURE;
    }
    const resyncs = createResyncEngine(view, wiring, log);
    // Listening first: status and metrics answer during preflight and the snapshot too.
    const control = new ControlPlane({ config: view, log, resyncs: resyncApi(resyncs), direction });
    let forgetAddress: () => void;
    try {
      forgetAddress = recordDaemonAddress(view, (await control.start()).port);
    } catch (error) {
      await wiring.close();
      controller.abort();
      throw error;
    }
    // Forward only: the new side's key sequences, kept ahead (sequences.syncEverySeconds) and watched.
    const stopSequences =
      direction === "forward"
        ? [startSequenceSync({ config, old: wiring.pools.source, new: wiring.pools.target, log }), watchSequenceGaps(config, wiring, control.metrics, log)]
        : [];
    try {
      await createPipeline(config, wiring, { log, observer: control.observer, resyncs }, direction).run(controller.signal);
      log.info("stopped");
      return EXIT_OK;
    } catch (error) {
      logFailure(log, "pipeline stopped", error);
      controller.abort();
      return EXIT_FAILURE;
    } finally {
      await Promise.all(stopSequences.map((stop) => stop()));
      forgetAddress();
      await control.stop();
      await wiring.close();
    }
  }
}

/** How often `pgferry_sequence_gap` is read (the plan is compiled again each time: a few catalog queries). */
const SEQUENCE_GAP_INTERVAL_MS = 30_000;

/** Reads the sequence gaps now and every SEQUENCE_GAP_INTERVAL_MS into the metrics; the returned function stops it. */
function watchSequenceGaps(config: Config, wiring: Wiring, metrics: PipelineMetrics, log: Logger): () => Promise<void> {
  return periodically(SEQUENCE_GAP_INTERVAL_MS, () =>
    sequenceGaps({ config, old: wiring.pools.source, new: wiring.pools.target }).then(
      (gaps) => metrics.sequenceGapsPolled(gaps),
      (error: unknown) => log.debug({ err: error }, "sequence gaps not read (the target tables may not exist yet)"),
    ),
  );
}

/** The failure as one log line: the report's headline and message once, hint and side as fields. */
function logFailure(log: Logger, what: string, error: unknown): void {
  const report = describeError(error);
  log.fatal(reportLogFields(report, error), `${what}: ${report.headline}: ${report.message}`);
}

/**
 * The error of a database that refuses pgferry for good (credentials, database, role, TLS), if one
 * does. One try each: a database that cannot be reached right now is an outage, left to the
 * pipeline's retries (the control server then reports it, unready).
 */
async function refusedConnection(wiring: Wiring): Promise<unknown> {
  for (const pool of [wiring.pools.source, wiring.pools.target]) {
    const error = await pool.query("SELECT 1").then(() => undefined, (e: unknown) => e);
    if (error !== undefined && classify(error).disposition !== "retry") return error;
  }
  return undefined;
}
