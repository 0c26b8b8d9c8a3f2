/**
 * pgferry as the demo runs it: what `pgferry run` does (control plane listening first, then the
 * pipeline until aborted), in this process.
 *
 * In-process rather than a child `pgferry run`: the live view reads the monitor and the metrics
 * registry directly (no HTTP polling or metric parsing), a failure arrives as a typed error instead
 * of a log line to scrape, and Ctrl-C stops one process whose every step the demo awaits. The
 * control server is the same one, so the status page, /v1/status and /metrics answer as for a daemon.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { AddressInfo } from "node:net";
import { loadConfig, type Config, type Env } from "../../src/config/index.js";
import { ControlPlane } from "../../src/control/controlPlane.js";
import { PgferryError } from "../../src/errors.js";
import { createLogger, type Logger } from "../../src/log/logger.js";
import { runPipeline } from "../../src/daemon.js";

/** Status and lag polls every second (the daemon's default is 5 s): the view refreshes about that often. */
const POLL_INTERVAL_MS = 1_000;

export interface InProcessDaemonOptions {
  configFile: string;
  /** What the config's `${VAR}` references read (the connection URLs); not the process environment. */
  env: Env;
  /** Control server port on 127.0.0.1; when it is taken, a free one is used instead. */
  port: number;
  /** pgferry's log lines go here (appended), so the terminal keeps the live view. */
  logFile: string;
}

export interface InProcessDaemon {
  readonly config: Config;
  readonly control: ControlPlane;
  /** Where the control server listens (may differ from the requested port). */
  readonly address: AddressInfo;
  /** Resolves when the pipeline stops after `stop()`; rejects when it fails on its own. */
  readonly finished: Promise<void>;
  /** Drains the pipeline (finishes and acknowledges the current batch), stops the control server, flushes the log. Safe to call twice. */
  stop(): Promise<void>;
}

function isAddressInUse(error: unknown): boolean {
  return error instanceof PgferryError && (error.cause as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
}

async function startControl(config: Config, log: Logger, port: number): Promise<{ control: ControlPlane; address: AddressInfo }> {
  const plane = (listenPort: number) => new ControlPlane({ config, log, listen: { host: "127.0.0.1", port: listenPort }, pollIntervalMs: POLL_INTERVAL_MS });
  const control = plane(port);
  try {
    return { control, address: await control.start() };
  } catch (error) {
    if (port === 0 || !isAddressInUse(error)) throw error;
    // Port 9187 is often held by a real pgferry (or a second demo): any free port does for a demo.
    const fallback = plane(0);
    return { control: fallback, address: await fallback.start() };
  }
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.closed || stream.destroyed) return resolve();
    stream.end(() => resolve());
  });
}

export async function startInProcessDaemon(options: InProcessDaemonOptions): Promise<InProcessDaemon> {
  const config = loadConfig(options.configFile, options.env);
  const logStream = createWriteStream(options.logFile, { flags: "a" });
  // Pretty (without colours) even though it is a file: it is read by a person, with `less`.
  const log = createLogger({ level: config.log.level, format: "pretty", destination: logStream, isTty: false });
  let started: { control: ControlPlane; address: AddressInfo };
  try {
    started = await startControl(config, log, options.port);
  } catch (error) {
    await closeStream(logStream);
    throw error;
  }
  const { control, address } = started;
  const controller = new AbortController();
  const finished = runPipeline(config, { log, observer: control.observer }, controller.signal);
  finished.catch(() => undefined); // the owner awaits it; until then a failure must not count as unhandled
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info("demo: stopping pgferry");
      controller.abort();
      await finished.catch(() => undefined); // a failure was reported through `finished` already
      await control.stop();
      log.info("stopped");
      await closeStream(logStream);
    })();
    return stopping;
  };
  return { config, control, address, finished, stop };
}
