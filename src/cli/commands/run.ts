/** `pgferry run`: the daemon. Snapshot, then stream until stopped. */
import { loadConfig } from "../../config/index.js";
import { createLogger } from "../../log/logger.js";
import { PgferryError } from "../../errors.js";
import { Pipeline } from "../../pipeline/pipeline.js";
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
    try {
      await new Pipeline({ config, log }).run(controller.signal);
      log.info("stopped");
      return EXIT_OK;
    } catch (error) {
      const kind = error instanceof PgferryError ? error.kind : "internal";
      const hint = error instanceof PgferryError ? error.hint : undefined;
      log.fatal({ err: error, kind, hint }, "pipeline stopped on an error");
      return EXIT_FAILURE;
    } finally {
      release();
    }
  },
};
