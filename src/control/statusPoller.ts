/**
 * Polls what the pipeline cannot report itself: the source's WAL position and the replication slot
 * (retained WAL, confirmed flush), and the pipeline's state in the target (checkpoint, per-table
 * states and row counts, running resyncs, conflicts it stopped on). With the other direction
 * configured (`opposite`), also that pipeline's state and lag, for the `reverse` readiness item. Its
 * own one-connection pools with a statement timeout, polls never overlap, and a failed poll is
 * counted and logged, never thrown: the pipeline is never blocked or stopped. The reads themselves
 * are status/readings.ts, which `pgferry cutover --check` (cutover/readiness.ts) uses too.
 */
import pg from "pg";
import { openPool } from "../sql/session.js";
import type { Logger } from "pino";
import type { OppositePipeline } from "../config/directions.js";
import { postgresStores, type StateStores } from "../state/postgresStores.js";
import { readOpposite, readSource, readTarget, type OppositeReading, type SourceReading, type TargetReading } from "../status/readings.js";

export interface StatusPollerOptions {
  sourceUrl: string;
  targetUrl: string;
  stateSchema: string;
  slot: string;
  intervalMs: number;
  log: Logger;
  onSource(reading: SourceReading, startedAt: number): void;
  onTarget(reading: TargetReading): void;
  onFailure?(database: "source" | "target", error: unknown): void;
  /** The other direction of a bidirectional config (its state is in this pipeline's source, its slot on this target). */
  opposite?: OppositePipeline | null;
  onOpposite?(reading: OppositeReading): void;
}

const TIMEOUT_MS = 5_000;


function pool(url: string): pg.Pool {
  // An idle connection dropped: the next poll reconnects.
  return openPool(url, {
    applicationName: "pgferry-status",
    max: 1,
    extra: { connectionTimeoutMillis: TIMEOUT_MS, statement_timeout: TIMEOUT_MS, idleTimeoutMillis: 0 } as Partial<pg.ClientConfig>,
  });
}

export class StatusPoller {
  private readonly source: pg.Pool;
  private readonly target: pg.Pool;
  private readonly stores: StateStores;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private readonly failing = { source: false, target: false };

  constructor(private readonly options: StatusPollerOptions) {
    this.source = pool(options.sourceUrl);
    this.target = pool(options.targetUrl);
    this.stores = postgresStores({ pool: this.target, schema: options.stateSchema, pipeline: options.slot });
  }

  /** Polls now, then every interval until stop(). Safe to call twice. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(0);
  }

  /** One poll of both databases (joins a poll already running). */
  pollNow(): Promise<void> {
    this.running ??= Promise.all([this.pollSource(), this.pollTarget(), this.pollOpposite()]).then(
      () => undefined,
      () => undefined,
    ).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops polling and closes the pools; safe to call twice or concurrently. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await Promise.all([this.source.end(), this.target.end()]).catch(() => undefined);
  }

  private schedule(delay: number): void {
    this.timer = setTimeout(() => {
      void this.pollNow().then(() => {
        if (!this.stopped) this.schedule(this.options.intervalMs);
      });
    }, delay);
    this.timer.unref();
  }

  private async pollSource(): Promise<void> {
    const startedAt = Date.now();
    try {
      this.options.onSource(await readSource(this.source, this.options.slot), startedAt);
      this.recovered("source");
    } catch (error) {
      this.failed("source", error);
    }
  }

  private async pollTarget(): Promise<void> {
    try {
      this.options.onTarget(await readTarget(this.target, this.options.stateSchema, this.options.slot, this.stores));
      this.recovered("target");
    } catch (error) {
      this.failed("target", error);
    }
  }

  /** The other direction's state and lag; a failure is part of the reading (the item says it), not a poll error of this pipeline. */
  private async pollOpposite(): Promise<void> {
    const { opposite } = this.options;
    if (!opposite || !this.options.onOpposite) return;
    try {
      this.options.onOpposite(await readOpposite(opposite, this.source, this.target));
    } catch (error) {
      if (this.stopped) return;
      this.options.onOpposite({
        slot: opposite.slot, stateSchema: opposite.stateSchema, startedAt: Date.now(), source: undefined, state: null, tables: [], resyncs: [], unresolvedConflicts: 0,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  private failed(database: "source" | "target", error: unknown): void {
    if (this.stopped) return;
    this.options.onFailure?.(database, error);
    // One warning per outage, not one per poll.
    if (!this.failing[database]) this.options.log.warn({ err: error, database }, "status poll failed; lag and status may be stale");
    this.failing[database] = true;
  }

  private recovered(database: "source" | "target"): void {
    if (this.failing[database]) this.options.log.info({ database }, "status poll recovered");
    this.failing[database] = false;
  }
}
