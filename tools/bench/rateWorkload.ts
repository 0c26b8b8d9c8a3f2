/**
 * The bench workload (`bench_tx`, 8 row changes per transaction) on several sessions at once, with
 * durable commits (the clusters' synchronous_commit = on, as in the lag scenario): unthrottled, to
 * find the rate the source sustains, or paced to a total rate on one shared schedule, to hold the
 * replicator at that rate. Time-boxed either way, so a source that cannot keep the pace shows as an
 * achieved rate below the asked one instead of a longer window.
 */
import type pg from "pg";
import { connect } from "./db.js";
import { sleep } from "./poll.js";
import { NEW_IDS } from "./workload.js";

/** Transactions of the rate windows are numbered from here at least (the drain and lag use lower ones). */
const FIRST_RATE_TRANSACTION = 1_000_000;

export interface WriterWindow {
  /** Transactions committed from `measureFromMs` to the end of the window. */
  transactions: number;
  /** Length of that measured part, seconds. */
  seconds: number;
}

/**
 * The first transaction number not used yet in the source: above the highest event-log id the
 * workload inserted (it inserts ids NEW_IDS + 2n and + 2n + 1), so every window, whichever ran
 * before, writes new keys.
 */
export async function nextTransaction(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ max: string | null }>("SELECT max(id)::text AS max FROM event_log WHERE id >= $1 AND id < $2", [NEW_IDS, NEW_IDS + 500_000_000]);
  const max = rows[0]?.max;
  return Math.max(FIRST_RATE_TRANSACTION, max === null || max === undefined ? 0 : Math.floor((Number(max) - NEW_IDS) / 2) + 1);
}

export class WriterSessions {
  private constructor(private readonly clients: pg.Client[]) {}

  static async open(url: string, sessions: number): Promise<WriterSessions> {
    const clients: pg.Client[] = [];
    try {
      for (let i = 0; i < sessions; i += 1) clients.push(await connect(url, "pgferry-bench-rate"));
    } catch (error) {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      throw error;
    }
    return new WriterSessions(clients);
  }

  get count(): number {
    return this.clients.length;
  }

  /**
   * Writes for `seconds` from transaction `first` on, `rate` transactions per second in all (the
   * i-th due at i / rate; a session behind schedule runs the next due one at once), or as fast as
   * the sessions go when `rate` is undefined. Counts the commits from `measureFromSeconds` on.
   */
  async run(first: number, seconds: number, rate: number | undefined, measureFromSeconds: number): Promise<WriterWindow> {
    const started = performance.now();
    const end = started + seconds * 1000;
    const measureFrom = started + measureFromSeconds * 1000;
    let next = 0;
    let measured = 0;
    await Promise.all(
      this.clients.map(async (client) => {
        for (;;) {
          const i = next++;
          const due = rate === undefined ? started : started + (i * 1000) / rate;
          if (due >= end) return;
          const wait = due - performance.now();
          if (wait > 1) await sleep(wait);
          if (performance.now() >= end) return;
          await client.query("SELECT bench_tx($1)", [first + i]);
          const committedAt = performance.now();
          if (committedAt >= measureFrom && committedAt <= end) measured += 1;
        }
      }),
    );
    return { transactions: measured, seconds: (end - measureFrom) / 1000 };
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.end().catch(() => undefined)));
  }
}
