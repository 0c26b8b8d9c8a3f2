/**
 * Shared by the control, metrics and status-page tests: a pipeline run in-process with the control
 * plane (monitor, metrics, status poller, HTTP server on a free loopback port) wired as `pgferry run`
 * wires it, plus small HTTP helpers.
 */
import { createServer } from "node:net";
import { onTestFailed } from "vitest";
import type { Config } from "../../src/config/index.js";
import { ControlPlane } from "../../src/control/controlPlane.js";
import type { ResyncController } from "../../src/control/resyncController.js";
import { runPipeline } from "../../src/daemon.js";
import { capturingLogger } from "../harness/pipelineRunner.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

export interface ControlledPipeline {
  control: ControlPlane;
  /** `http://127.0.0.1:<port>` of the control server. */
  base: string;
  logs: string[];
  /** Starts the pipeline (the control server runs before it, as in `pgferry run`). */
  startPipeline(): void;
  stopPipeline(): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlledOptions {
  resyncs?: ResyncController;
  pollIntervalMs?: number;
  /** Start the pipeline at once (default) or leave it to the test. */
  start?: boolean;
}

export async function startControlled(config: Config, options: ControlledOptions = {}): Promise<ControlledPipeline> {
  const { log, logs } = capturingLogger();
  const control = new ControlPlane({ config, log, resyncs: options.resyncs, pollIntervalMs: options.pollIntervalMs ?? 200, listen: { host: "127.0.0.1", port: 0 } });
  const address = await control.start();
  let controller: AbortController | undefined;
  let done: Promise<unknown> = Promise.resolve();
  const running: ControlledPipeline = {
    control,
    base: `http://127.0.0.1:${address.port}`,
    logs,
    startPipeline() {
      controller = new AbortController();
      done = runPipeline(config, { log, observer: control.observer }, controller.signal);
    },
    async stopPipeline() {
      controller?.abort();
      await done.catch(() => undefined);
    },
    async stop() {
      await running.stopPipeline();
      await control.stop();
    },
  };
  if (options.start !== false) running.startPipeline();
  onTestFailed(() => {
    console.log(`--- last pipeline log lines ---\n${logs.slice(-60).join("\n")}`);
  });
  return running;
}

export async function request(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: response.status, body, headers: response.headers };
}

/** A TCP port free on loopback right now (for configs that need a fixed port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
