/**
 * Polls what the pipeline cannot report itself: the source's WAL position and the replication slot
 * (retained WAL, confirmed flush), and the pipeline's state in the target (checkpoint, per-table
 * states and row counts). Its own one-connection pools with a statement timeout, polls never overlap,
 * and a failed poll is counted and logged, never thrown: the pipeline is never blocked or stopped.
 */
import pg from "pg";
import { openPool } from "../sql/session.js";
import type { Logger } from "pino";
import { parseLsn } from "../source/lsn.js";
import type { CheckpointStore } from "../state/checkpointStore.js";
import { postgresStores } from "../state/postgresStores.js";
import type { SourceReading, TargetReading } from "./pipelineMonitor.js";

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
}

const TIMEOUT_MS = 5_000;

const SLOT_SQL = `
SELECT pg_current_wal_lsn()::text AS wal_lsn, s.slot_name IS NOT NULL AS found, s.active,
       s.restart_lsn::text AS restart_lsn, s.confirmed_flush_lsn::text AS confirmed_flush_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::float8 AS retained,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::float8 AS flush_lag
FROM (VALUES (1)) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`;

interface SlotRow {
  wal_lsn: string; found: boolean; active: boolean | null; restart_lsn: string | null; confirmed_flush_lsn: string | null;
  retained: number | null; flush_lag: number | null;
}

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
  private readonly store: CheckpointStore;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private readonly failing = { source: false, target: false };

  constructor(private readonly options: StatusPollerOptions) {
    this.source = pool(options.sourceUrl);
    this.target = pool(options.targetUrl);
    this.store = postgresStores({ pool: this.target, schema: options.stateSchema, pipeline: options.slot }).checkpoints;
  }

  /** Polls now, then every interval until stop(). Safe to call twice. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(0);
  }

  /** One poll of both databases (joins a poll already running). */
  pollNow(): Promise<void> {
    this.running ??= Promise.all([this.pollSource(), this.pollTarget()]).then(
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
      const { rows } = await this.source.query<SlotRow>(SLOT_SQL, [this.options.slot]);
      const row = rows[0];
      if (!row) return;
      const reading: SourceReading = {
        walLsn: parseLsn(row.wal_lsn),
        slot: row.found
          ? {
              active: row.active ?? false,
              restartLsn: row.restart_lsn === null ? null : parseLsn(row.restart_lsn),
              confirmedFlushLsn: row.confirmed_flush_lsn === null ? null : parseLsn(row.confirmed_flush_lsn),
              retainedBytes: row.retained,
              confirmedFlushLagBytes: row.flush_lag,
            }
          : null,
      };
      this.options.onSource(reading, startedAt);
      this.recovered("source");
    } catch (error) {
      this.failed("source", error);
    }
  }

  private async pollTarget(): Promise<void> {
    try {
      // Before the first run there is no state schema; that is not a failure.
      const reading: TargetReading = (await this.store.exists())
        ? { state: await this.store.summary(), tables: await this.store.tables() }
        : { state: null, tables: [] };
      this.options.onTarget(reading);
      this.recovered("target");
    } catch (error) {
      this.failed("target", error);
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
