/**
 * Replication lag as a user sees it: a heartbeat row is committed on the source every 100 ms and the
 * target is polled every 20 ms; a heartbeat's lag is the time from its source COMMIT returning to the
 * first poll that sees it (so figures err high by up to one poll interval, never low).
 */
import type pg from "pg";
import { connect, quoteIdent } from "./db.js";
import { distribution, type Distribution } from "./stats.js";
import { pollUntil, sleep } from "./poll.js";

export interface LagProbeOptions {
  sourceUrl: string;
  targetUrl: string;
  /** Schema of `bench_heartbeat` in the target. */
  targetSchema: string;
  /** Schema of `bench_heartbeat` in the source; default: the source's search_path (public). */
  sourceSchema?: string;
  /** Heartbeat ids used are firstId, firstId + 1, ... */
  firstId: number;
  intervalMs?: number;
  pollMs?: number;
}

export interface LagResult {
  sent: number;
  seen: number;
  /** Seconds from source commit to visible on the target. */
  lag: Distribution;
  /** Each heartbeat's lag in the order they were sent (undefined: never seen), to tell a growing lag from a steady one. */
  samples: (number | undefined)[];
}

export class LagProbe {
  private readonly committed = new Map<number, number>();
  private readonly seen = new Map<number, number>();
  private next: number;
  private writing = false;
  private polling = false;
  private writer: Promise<void> | undefined;
  private poller: Promise<void> | undefined;
  private source: pg.Client | undefined;
  private target: pg.Client | undefined;

  constructor(private readonly options: LagProbeOptions) {
    this.next = options.firstId;
  }

  async start(): Promise<void> {
    this.source = await connect(this.options.sourceUrl, "pgferry-bench-heartbeat");
    this.target = await connect(this.options.targetUrl, "pgferry-bench-lag-poll");
    this.writing = true;
    this.polling = true;
    this.writer = this.write(this.source);
    this.poller = this.poll(this.target);
  }

  /** Stops the heartbeats, waits until every one is seen (or `timeoutMs`), and summarises. */
  async finish(timeoutMs: number): Promise<LagResult> {
    this.writing = false;
    await this.writer;
    const sent = this.committed.size;
    await pollUntil(() => Promise.resolve(this.seen.size >= sent ? true : undefined), { what: "the last heartbeats on the target", timeoutMs, intervalMs: 50 }).catch(() => undefined);
    this.polling = false;
    await this.poller;
    for (const client of [this.source, this.target]) await client?.end().catch(() => undefined);
    // The map keeps insertion order: the order the heartbeats were sent.
    const samples = [...this.committed].map(([id, at]) => {
      const seenAt = this.seen.get(id);
      return seenAt === undefined ? undefined : Math.max(0, seenAt - at) / 1000;
    });
    const lags = samples.filter((v): v is number => v !== undefined);
    return { sent, seen: lags.length, lag: distribution(lags), samples };
  }

  private async write(client: pg.Client): Promise<void> {
    const { intervalMs = 100, sourceSchema } = this.options;
    const sql = `INSERT INTO ${heartbeatTable(sourceSchema)} (id, sent_at) VALUES ($1, clock_timestamp())`;
    let due = performance.now();
    while (this.writing) {
      const id = this.next++;
      await client.query(sql, [id]);
      this.committed.set(id, performance.now());
      due += intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
  }

  private async poll(client: pg.Client): Promise<void> {
    const { pollMs = 20, firstId, targetSchema } = this.options;
    const sql = `SELECT id::int AS id FROM ${quoteIdent(targetSchema)}.bench_heartbeat WHERE id >= $1 AND id < $2`;
    let low = firstId;
    while (this.polling) {
      const at = performance.now();
      const { rows } = await client.query<{ id: number }>(sql, [low, this.next]);
      for (const { id } of rows) if (!this.seen.has(id)) this.seen.set(id, at);
      while (this.seen.has(low)) low += 1;
      await sleep(pollMs);
    }
  }
}

function heartbeatTable(schema: string | undefined): string {
  return schema === undefined ? "bench_heartbeat" : `${quoteIdent(schema)}.bench_heartbeat`;
}

/** One marker row: inserted on the source (durably) after a workload, awaited on the target. */
export async function insertMarker(sourceUrl: string, id: number, schema?: string): Promise<void> {
  const client = await connect(sourceUrl);
  try {
    await client.query(`INSERT INTO ${heartbeatTable(schema)} (id, sent_at) VALUES ($1, clock_timestamp())`, [id]);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Resolves once heartbeat row `id` is visible in the target; `guard` may throw to give up early. */
export async function waitForMarker(targetUrl: string, schema: string, id: number, timeoutMs: number, guard?: () => void | Promise<void>): Promise<void> {
  const client = await connect(targetUrl, "pgferry-bench-marker-poll");
  try {
    const sql = `SELECT 1 FROM ${quoteIdent(schema)}.bench_heartbeat WHERE id = $1`;
    await pollUntil(async () => ((await client.query(sql, [id])).rowCount ? true : undefined), {
      what: `marker row ${id} in the target`,
      timeoutMs,
      intervalMs: 25,
      guard,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}
