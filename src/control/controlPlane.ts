/**
 * The control side of a pipeline, wired in one place: the monitor (status and lag in memory), the
 * metrics registry, the status poller and the HTTP server. `observer` is what the pipeline reports
 * to; `pgferry run` starts this before the pipeline (so status answers during preflight and the
 * snapshot) and stops it after.
 */
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { oppositeOf, type Direction } from "../config/directions.js";
import { readinessLimits } from "../cutover/readinessItems.js";
import { parseListenAddress, type Config, type ListenAddress } from "../config/index.js";
import { PgferryError } from "../errors.js";
import type { PipelineObserver } from "../pipeline/pipeline.js";
import { ControlServer } from "./controlServer.js";
import { PipelineMetrics } from "./metrics.js";
import { PipelineMonitor, sourceTargets } from "./pipelineMonitor.js";
import type { ResyncController } from "./resyncController.js";
import { StatusPoller } from "./statusPoller.js";

/** How often the source's WAL and slot and the target's state are read for status and lag. */
export const DEFAULT_POLL_INTERVAL_MS = 5_000;

export interface ControlPlaneOptions {
  config: Config;
  log: Logger;
  resyncs?: ResyncController;
  pollIntervalMs?: number;
  /** Overrides `control.listen` (tests listen on port 0). */
  listen?: ListenAddress;
  /** Which pipeline this is; its metrics carry it as the `direction` label. */
  direction?: Direction;
}

export class ControlPlane {
  readonly monitor: PipelineMonitor;
  readonly metrics: PipelineMetrics;
  readonly poller: StatusPoller;
  readonly server: ControlServer;
  /** Reports to the monitor and the metrics; a failing subscriber is logged, never thrown into the pipeline. */
  readonly observer: PipelineObserver;

  constructor(options: ControlPlaneOptions) {
    const { config, log } = options;
    const listen = options.listen ?? parseListenAddress(config.control.listen);
    if (!listen) throw new PgferryError("config", `control.listen is not host:port: ${config.control.listen}`);
    const direction = options.direction ?? "forward";
    this.monitor = new PipelineMonitor({
      slot: config.source.slot,
      readyMaxLagSeconds: config.control.readyMaxLagSeconds,
      readinessLimits: readinessLimits(config),
      targets: sourceTargets(config, direction),
      direction,
    });
    this.metrics = new PipelineMetrics({ monitor: this.monitor, resyncs: options.resyncs, direction: options.direction ?? "forward", labelDirection: config.reverse !== undefined });
    this.poller = new StatusPoller({
      sourceUrl: config.source.url,
      targetUrl: config.target.url,
      stateSchema: config.target.stateSchema,
      slot: config.source.slot,
      intervalMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
      log: log.child({ module: "status" }),
      onSource: (reading, startedAt) => this.monitor.sourcePolled(reading, startedAt),
      onTarget: (reading) => this.monitor.targetPolled(reading),
      onFailure: (database) => this.metrics.pollFailed(database),
      // The forward daemon also reads the reverse pipeline, for the `reverse` readiness item.
      opposite: direction === "forward" ? oppositeOf(config, "forward") : null,
      onOpposite: (reading) => this.monitor.oppositePolled(reading),
    });
    this.server = new ControlServer({
      listen,
      adminToken: config.control.adminToken,
      log: log.child({ module: "control" }),
      status: () => this.monitor.status(),
      readiness: () => this.monitor.readiness(),
      registry: this.metrics.registry,
      resyncs: options.resyncs,
    });
    this.observer = combineObservers(log, [this.monitor, this.metrics]);
  }

  /** Listens, then starts polling. Rejects when the server cannot listen (nothing is left running). */
  async start(): Promise<AddressInfo> {
    const address = await this.server.start();
    this.poller.start();
    return address;
  }

  async stop(): Promise<void> {
    await Promise.all([this.server.stop(), this.poller.stop()]);
  }
}

/** One observer that reports to several; each call is isolated so a bug in one cannot stop the pipeline. */
export function combineObservers(log: Logger, observers: readonly PipelineObserver[]): PipelineObserver {
  const each = (event: string, call: (observer: PipelineObserver) => void) => {
    for (const observer of observers) {
      try {
        call(observer);
      } catch (error) {
        log.error({ err: error, event }, "pipeline observer failed");
      }
    }
  };
  // `Required`: an event added to PipelineObserver fails to compile here until it is forwarded.
  return {
    phase: (phase) => each("phase", (o) => o.phase?.(phase)),
    batchApplied: (batch) => each("batchApplied", (o) => o.batchApplied?.(batch)),
    rowsCopied: (table, rows) => each("rowsCopied", (o) => o.rowsCopied?.(table, rows)),
    serverWalEnd: (lsn) => each("serverWalEnd", (o) => o.serverWalEnd?.(lsn)),
    error: (kind, error) => each("error", (o) => o.error?.(kind, error)),
    originFiltered: (origin, changes) => each("originFiltered", (o) => o.originFiltered?.(origin, changes)),
  } satisfies Required<PipelineObserver>;
}
