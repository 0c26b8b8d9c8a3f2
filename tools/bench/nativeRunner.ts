/**
 * The reference: native logical replication (CREATE PUBLICATION + CREATE SUBSCRIPTION) on an
 * identity mapping, into a target database whose tables live in `public` like the source's. The
 * subscription's synchronous_commit is the bench's (`--synchronous-commit`, the same as pgferry's
 * apply session; default off, PostgreSQL's default); everything else is PostgreSQL's default (text format, `max_sync_workers_per_subscription` of the
 * cluster). The initial sync is done when every `pg_subscription_rel.srsubstate` is 'r'.
 *
 * Its start-up after ENABLE (the launcher starting the apply worker, which connects and receives its
 * first WAL) is watched from the side, as pgferry's is read from its "streaming" log line, so a drain
 * that includes waiting on the launcher shows it (see clusters.ts, wal_retrieve_retry_interval).
 */
import type pg from "pg";
import type { LocalCluster } from "../embedded/localCluster.js";
import type { Cleanup } from "./cleanup.js";
import { connect, quoteIdent, quoteLiteral, withClient } from "./db.js";
import { pollUntil, sleep } from "./poll.js";
import { serverCpuSeconds } from "./processCpu.js";
import type { PhaseProcessStats, Replicator } from "./replicator.js";

export interface NativeRunnerOptions {
  source: LocalCluster;
  sourceDb: string;
  targetUrl: string;
  /** Source tables (`public.x`), published via the partition root. */
  tables: readonly string[];
  name: string;
  /** The subscription's synchronous_commit: 'off' is PostgreSQL's default for subscriptions (and pgferry's for its apply session). */
  synchronousCommit: "on" | "off";
  cleanup: Cleanup;
  /** Copy the tables when subscribing (default); false when the target holds them already (the reverse direction). */
  copyData?: boolean;
}

export class NativeReplicator implements Replicator {
  readonly system = "native";
  readonly targetSchema = "public";
  private unregister: (() => void) | undefined;
  private lastHealthCheck = 0;
  /** Bumped by every resume and pause, so a stale start-up watch stops. */
  private generation = 0;
  private resumedAt: number | undefined;
  private streamingAt: number | undefined;

  constructor(private readonly options: NativeRunnerOptions) {}

  private get sub(): string {
    return quoteIdent(this.options.name);
  }

  async startWithSnapshot(timeoutMs: number): Promise<void> {
    const { source, sourceDb, targetUrl, tables, name } = this.options;
    await withClient(source.url(sourceDb), (c) =>
      c.query(`CREATE PUBLICATION ${this.sub} FOR TABLE ${tables.join(", ")} WITH (publish_via_partition_root = true)`),
    );
    const conninfo = `host=127.0.0.1 port=${source.port} dbname=${sourceDb} user=postgres application_name=${name}`;
    this.unregister = this.options.cleanup.add("native subscription", () => this.dispose());
    const client = await connect(targetUrl, "pgferry-bench-state-poll");
    try {
      await client.query(
        `CREATE SUBSCRIPTION ${this.sub} CONNECTION ${quoteLiteral(conninfo)} PUBLICATION ${this.sub} ` +
          `WITH (copy_data = ${this.options.copyData ?? true}, synchronous_commit = '${this.options.synchronousCommit}')`,
      );
      await pollUntil(
        async () => {
          await this.health();
          const { rows } = await client.query<{ total: number; ready: number }>(
            `SELECT count(*)::int AS total, (count(*) FILTER (WHERE r.srsubstate = 'r'))::int AS ready
             FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`,
            [name],
          );
          const state = rows[0]!;
          return state.total === tables.length && state.ready === state.total ? true : undefined;
        },
        { what: "the native subscription's tables to be ready (srsubstate = 'r')", timeoutMs, intervalMs: 50 },
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Seconds from ENABLE until the apply worker had received WAL (or a keepalive) from the walsender. */
  get startupSeconds(): number | undefined {
    return this.resumedAt === undefined || this.streamingAt === undefined ? undefined : (this.streamingAt - this.resumedAt) / 1000;
  }

  async pause(): Promise<PhaseProcessStats | undefined> {
    this.generation += 1;
    await withClient(this.options.targetUrl, async (c) => {
      await c.query(`ALTER SUBSCRIPTION ${this.sub} DISABLE`);
      await this.waitWorkerGone(c);
    });
    return undefined;
  }

  async resume(): Promise<void> {
    const generation = ++this.generation;
    this.streamingAt = undefined;
    this.resumedAt = performance.now();
    await withClient(this.options.targetUrl, (c) => c.query(`ALTER SUBSCRIPTION ${this.sub} ENABLE`));
    void this.watchStartup(generation);
  }

  async cpuSeconds(): Promise<Record<string, number>> {
    const { source, sourceDb, targetUrl, name } = this.options;
    const [walsender, apply] = await Promise.all([
      serverCpuSeconds(source.url(sourceDb), "datname = $1 AND backend_type = 'walsender' AND application_name = $2", [sourceDb, name]),
      serverCpuSeconds(targetUrl, "datname = current_database() AND backend_type = 'logical replication worker'", []),
    ]);
    return { replicator: 0, sourceBackends: walsender, targetBackends: apply };
  }

  /** Apply or sync errors (PostgreSQL retries them forever; a benchmark must not wait for that). */
  async health(): Promise<void> {
    if (performance.now() - this.lastHealthCheck < 1000) return;
    this.lastHealthCheck = performance.now();
    const { rows } = await withClient(this.options.targetUrl, (c) =>
      c.query<{ apply_error_count: string; sync_error_count: string }>(
        "SELECT apply_error_count::text, sync_error_count::text FROM pg_stat_subscription_stats WHERE subname = $1",
        [this.options.name],
      ),
    );
    const stats = rows[0];
    if (stats && (stats.apply_error_count !== "0" || stats.sync_error_count !== "0")) {
      throw new Error(`native subscription reports errors (apply ${stats.apply_error_count}, sync ${stats.sync_error_count}); see the target's server log`);
    }
  }

  async dispose(): Promise<void> {
    this.unregister?.();
    this.unregister = undefined;
    // DROP SUBSCRIPTION also drops its slot on the source.
    await withClient(this.options.targetUrl, (c) => c.query(`DROP SUBSCRIPTION IF EXISTS ${this.sub}`)).catch(() => undefined);
  }

  /**
   * Polls (every 10 ms, one small query) until the apply worker reports a received position, then
   * records when. Best effort: a failed or outlived watch leaves startupSeconds undefined.
   */
  private async watchStartup(generation: number): Promise<void> {
    const deadline = performance.now() + 60_000;
    try {
      await withClient(this.options.targetUrl, async (c) => {
        while (generation === this.generation && performance.now() < deadline) {
          const { rows } = await c.query<{ streaming: boolean }>(
            "SELECT received_lsn IS NOT NULL AS streaming FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL AND pid IS NOT NULL",
            [this.options.name],
          );
          if (rows[0]?.streaming) {
            if (generation === this.generation) this.streamingAt = performance.now();
            return;
          }
          await sleep(10);
        }
      });
    } catch {
      // Only a figure for the report is lost.
    }
  }

  /** DISABLE returns before the apply worker exits; wait until it (and its walsender) are gone. */
  private async waitWorkerGone(client: pg.Client): Promise<void> {
    await pollUntil(
      async () => {
        const { rows } = await client.query<{ n: number }>("SELECT count(pid)::int AS n FROM pg_stat_subscription WHERE subname = $1", [this.options.name]);
        return rows[0]?.n === 0 ? true : undefined;
      },
      { what: "the native apply worker to stop", timeoutMs: 30_000, intervalMs: 50 },
    );
    await withClient(this.options.source.url(this.options.sourceDb), (c) =>
      pollUntil(
        async () => {
          const { rows } = await c.query<{ active: boolean }>("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [this.options.name]);
          return rows[0]?.active ? undefined : true;
        },
        { what: "the native walsender to stop", timeoutMs: 30_000, intervalMs: 50 },
      ),
    );
  }
}
