/**
 * When the first change of a backlog became visible on the target, so a drain's time splits into
 * getting going (pgferry's process start-up; PostgreSQL's launcher starting the apply worker) and
 * applying. Every backlog transaction inserts event_log rows with ids from NEW_IDS, so one index
 * lookup every 10 ms tells; the watch ends when it sees one or is told to stop.
 */
import type pg from "pg";
import { connect, quoteIdent } from "./db.js";
import { sleep } from "./poll.js";
import { LANE_IDS, NEW_IDS } from "./workload.js";

export class FirstChangeWatch {
  private stopped = false;
  private seenAt: number | undefined;
  private readonly polling: Promise<void>;

  private constructor(client: pg.Client, schema: string) {
    this.polling = this.poll(client, schema);
  }

  /** Connects first, so the connection is not part of what is timed. */
  static async start(targetUrl: string, schema: string): Promise<FirstChangeWatch> {
    return new FirstChangeWatch(await connect(targetUrl, "pgferry-bench-first-change"), schema);
  }

  /** Seconds from `sinceMs` (a performance.now()) to the first change seen; undefined if none was. */
  async finish(sinceMs: number): Promise<number | undefined> {
    this.stopped = true;
    await this.polling;
    return this.seenAt === undefined ? undefined : Math.max(0, this.seenAt - sinceMs) / 1000;
  }

  private async poll(client: pg.Client, schema: string): Promise<void> {
    const sql = `SELECT EXISTS (SELECT 1 FROM ${quoteIdent(schema)}.event_log WHERE id >= $1 AND id < $2) AS seen`;
    try {
      while (!this.stopped) {
        const at = performance.now();
        const { rows } = await client.query<{ seen: boolean }>(sql, [NEW_IDS, LANE_IDS]);
        if (rows[0]?.seen) {
          this.seenAt = at;
          return;
        }
        await sleep(10);
      }
    } catch {
      // Only a figure for the report is lost.
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
