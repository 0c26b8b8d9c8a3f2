/** `pgferry run`: the daemon. Snapshot, then stream until stopped; the control server runs alongside. */
import { openPool } from "../../sql/session.js";
import { loadConfig } from "../../config/index.js";
import { ControlPlane } from "../../control/controlPlane.js";
import { createLogger } from "../../log/logger.js";
import { PgferryError } from "../../errors.js";
import { Pipeline } from "../../pipeline/pipeline.js";
import { ResyncEngine } from "../../pipeline/resync/resyncEngine.js";
import { ResyncStore } from "../../state/resyncStore.js";
import { resyncApi } from "../resyncApi.js";
import { CONFIG_OPTION, EXIT_FAILURE, EXIT_OK, type Command } from "../command.js";
import { handleShutdownSignals } from "../signals.js";

export const runCommand: Command = {
  name: "run",
  summary: "run the pipeline: snapshot, then stream changes until stopped",
  usage: "pgferry run [--config pgferry.yaml]",
  options: { ...CONFIG_OPTION },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const log = createLogger({ level: config.log.level, format: config.log.format, destination: io.stdout });
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
    // The resync engine outlives retries of the pipeline; its records live in the target's state schema.
    const statePool = openPool(config.target.url, { applicationName: "pgferry-resync-state", max: 2 });
    const resyncs = new ResyncEngine({
      store: new ResyncStore({ pool: statePool, schema: config.target.stateSchema, pipeline: config.source.slot }),
      log: log.child({ module: "resync" }),
      chunkRows: config.resync.chunkRows,
      chunkBytes: config.apply.queueMaxBytes,
    });
    // Listening first: status and metrics answer during preflight and the snapshot too.
    const control = new ControlPlane({ config, log, resyncs: resyncApi(resyncs) });
    try {
      await control.start();
    } catch (error) {
      release();
      await statePool.end();
      throw error;
    }
    try {
      await new Pipeline({ config, log, observer: control.observer, resyncs }).run(controller.signal);
      log.info("stopped");
      return EXIT_OK;
    } catch (error) {
      const kind = error instanceof PgferryError ? error.kind : "internal";
      const hint = error instanceof PgferryError ? error.hint : undefined;
      log.fatal({ err: error, kind, hint }, "pipeline stopped on an error");
      return EXIT_FAILURE;
    } finally {
      await control.stop();
      await statePool.end();
      release();
    }
  },
};
