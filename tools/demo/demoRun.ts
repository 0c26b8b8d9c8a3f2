/**
 * Everything one demo run started (clusters, pgferry, the load, the view) and how to undo it:
 * `cleanUp` stops them in reverse order of their start and removes the clusters, or with `--keep`
 * says where they are.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";
import { defaultPgBin, type LocalCluster } from "../embedded/localCluster.js";
import { PgferryError } from "../../src/errors.js";
import { DATABASE } from "./demoDatabases.js";
import type { DemoOptions } from "./demoOptions.js";
import type { InProcessDaemon } from "./inProcessDaemon.js";
import type { LiveView } from "./liveView.js";
import type { PacedLoad } from "./pacedLoad.js";

export function describeError(error: unknown): string {
  if (error instanceof PgferryError) return `${error.kind} error: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ""}`;
  return error instanceof Error ? error.message : String(error);
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** Everything the demo started, undone in reverse order by `cleanUp`. */
export class DemoRun {
  readonly clusters: LocalCluster[] = [];
  daemon: InProcessDaemon | undefined;
  load: PacedLoad | undefined;
  loadPool: pg.Pool | undefined;
  view: LiveView | undefined;
  private removing: Promise<void> | undefined;
  readonly loadController = new AbortController();
  /** Aborted by the first Ctrl-C / SIGTERM. */
  readonly stopRequested = new AbortController();

  constructor(
    readonly options: DemoOptions,
    readonly demoDir: string,
    readonly logFile: string,
  ) {}

  say(line: string): void {
    if (this.view) this.view.print(line);
    else process.stdout.write(`${line}\n`);
  }

  /** `step`, unless a stop is requested first: then the step is abandoned (its clusters are about to go) and StopRequested thrown. */
  async untilStopped<T>(step: Promise<T>): Promise<T> {
    step.catch(() => undefined); // abandoned steps fail as their servers stop; nobody waits for them
    const stopped = waitForAbort(this.stopRequested.signal).then(() => {
      throw new StopRequested();
    });
    return Promise.race([step, stopped]);
  }

  /** Stops the load and pgferry, then removes the clusters (or, with --keep, says where they are). */
  async cleanUp(failed: boolean): Promise<void> {
    await this.view?.stop();
    this.view = undefined;
    this.loadController.abort();
    if (this.load) {
      this.say("stopping the load…");
      await this.load.done.catch(() => undefined); // a load failure was reported already
    }
    await this.loadPool?.end().catch(() => undefined);
    if (this.daemon) {
      this.say("stopping pgferry (finishing and acknowledging the current batch)…");
      await this.daemon.stop();
    }
    await this.removeClusters(failed);
  }

  /** Once, even when a forced stop overtakes the clean-up already under way. */
  removeClusters(failed: boolean): Promise<void> {
    this.removing ??= this.removeClustersOnce(failed);
    return this.removing;
  }

  private async removeClustersOnce(failed: boolean): Promise<void> {
    if (this.options.keep) {
      this.printKept();
      return;
    }
    if (this.clusters.length > 0) this.say("stopping and removing both clusters…");
    await Promise.all(this.clusters.map((c) => c.destroy()));
    if (failed && this.daemon) {
      // The clusters are gone; pgferry's log is what explains the failure.
      this.say(`pgferry's log is kept: ${this.logFile}`);
    } else {
      await rm(this.demoDir, { recursive: true, force: true });
    }
  }

  private printKept(): void {
    const runAs = isRoot() ? "runuser -u postgres -- " : "";
    const clusters = [...this.clusters].sort((a, b) => a.name.localeCompare(b.name)); // source, then target
    this.say("--keep: the clusters keep running:");
    for (const c of clusters) this.say(`  ${c.name.padEnd(12)} ${c.url(DATABASE)}   directory ${c.dir}`);
    this.say(`  pgferry log  ${this.logFile}`);
    for (const c of clusters) this.say(`  stop ${c.name}: ${runAs}${join(defaultPgBin(), "pg_ctl")} stop -D ${c.dataDir}`);
    this.say(`  then remove everything: rm -rf ${this.demoDir}`);
  }
}

export class StopRequested extends Error {
  constructor() {
    super("stop requested");
  }
}

export function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolveAbort) => {
    if (signal.aborted) resolveAbort();
    else signal.addEventListener("abort", () => resolveAbort(), { once: true });
  });
}
