/**
 * `pgferry run`: the daemon. A configuration that can never connect (a wrong password, an unknown
 * database or role, a TLS mismatch) ends it at once, with one report; a database that is down is an
 * outage, which the pipeline waits out however long it lasts. Then snapshot, then stream until
 * stopped, the control server alongside. A failure is logged once, as one line (errorReport.ts).
 */
import { loadConfig } from "../../config/index.js";
import { ControlPlane } from "../../control/controlPlane.js";
import { createLogger, type Logger } from "../../log/logger.js";
import { classify } from "../../pipeline/errorPolicy.js";
import { createPipeline, createResyncEngine, wire, type Wiring } from "../../daemon.js";
import { resyncApi } from "../resyncApi.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, unexpectedPositionals, type Command } from "../command.js";
import { recordDaemonAddress } from "../daemonAddress.js";
import { describeError, reportLogFields, withQuietErrors } from "../errorReport.js";
import { handleShutdownSignals } from "../signals.js";

export const runCommand: Command = {
  name: "run",
  summary: "run the pipeline: snapshot, then stream changes until stopped",
  usage: "pgferry run [--config pgferry.yaml]",
  options: { ...CONFIG_OPTION },
  validate: (_values, positionals) => unexpectedPositionals(positionals),
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const log = withQuietErrors(createLogger({ level: config.log.level, format: config.log.format, destination: io.stdout }));
    const controller = new AbortController();
    const release = handleShutdownSignals(
      (signal) => {
        log.info({ signal }, "shutdown requested; draining (send again to force)");
        controller.abort();
      },
      (signal) => {
        log.warn({ signal }, "forced exit; unacknowledged changes stay in the slot");
        process.exit(EXIT_FAILURE);
      },
    );
    // Endpoints, pools and stores, made once; the resync engine outlives retries of the pipeline.
    const wiring = wire(config);
    const unreachable = await refusedConnection(wiring);
    if (unreachable !== undefined) {
      release();
      await wiring.close();
      logFailure(log, "cannot start", unreachable);
      return EXIT_FAILURE;
    }
    const resyncs = createResyncEngine(config, wiring, log);
    // Listening first: status and metrics answer during preflight and the snapshot too.
    const control = new ControlPlane({ config, log, resyncs: resyncApi(resyncs) });
    let forgetAddress: () => void;
    try {
      forgetAddress = recordDaemonAddress(config, (await control.start()).port);
    } catch (error) {
      release();
      await wiring.close();
      throw error;
    }
    try {
      await createPipeline(config, wiring, { log, observer: control.observer, resyncs }).run(controller.signal);
      log.info("stopped");
      return EXIT_OK;
    } catch (error) {
      logFailure(log, "pipeline stopped", error);
      return EXIT_FAILURE;
    } finally {
      forgetAddress();
      await control.stop();
      await wiring.close();
      release();
    }
  },
};

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
