/**
 * The demo's live writes: the old project's mixed load (every table, inserts, updates, deletes) at a
 * steady rate. `oldProjectLoad` runs flat out, which would make the view a blur of backlog; here each
 * of its transactions waits for its turn before BEGIN, so the source commits about `rate` per second.
 */
import type pg from "pg";
import { setTimeout as sleep } from "node:timers/promises";
import { oldProjectLoad } from "./oldProject.js";

export interface PacedLoadOptions {
  /** Transactions per second. */
  rate: number;
  /** Stops after this many transactions (the load is bounded even when nobody presses Ctrl-C). */
  transactions: number;
  signal: AbortSignal;
}

export interface PacedLoad {
  /** Transactions begun so far (committed or rolled back). */
  readonly started: () => number;
  /** Resolves with the number of committed transactions when the load ends (aborted or done). */
  readonly done: Promise<number>;
}

/** Hands out turns `1 / rate` seconds apart; a turn not taken in time is not made up in a burst. */
function pacer(rate: number, signal: AbortSignal): () => Promise<void> {
  const intervalMs = 1000 / rate;
  let next = Date.now();
  return async () => {
    const now = Date.now();
    const turn = Math.max(next, now); // after a stall the load resumes at the rate, without a burst
    next = turn + intervalMs;
    if (turn > now) await sleep(turn - now, undefined, { signal }).catch(() => undefined); // aborted: the load sees the signal next
  };
}

/** A view of `pool` whose clients wait for `turn` before each BEGIN; everything else goes straight through. */
function pacedPool(pool: pg.Pool, turn: () => Promise<void>, onBegin: () => void): pg.Pool {
  const connect = async (): Promise<pg.PoolClient> => {
    const client = await pool.connect();
    return new Proxy(client, {
      get(target, property) {
        if (property === "query") {
          return async (text: string, values?: unknown[]) => {
            if (text === "BEGIN") {
              await turn();
              onBegin();
            }
            return target.query(text, values);
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  };
  // oldProjectLoad only calls connect() (then query and release on the client).
  return { connect } as unknown as pg.Pool;
}

export function startPacedLoad(pool: pg.Pool, options: PacedLoadOptions): PacedLoad {
  let started = 0;
  const paced = pacedPool(pool, pacer(options.rate, options.signal), () => (started += 1));
  // Two writers, as in the tests: concurrent transactions on related rows, as a real application has.
  const done = oldProjectLoad(paced, {
    transactions: options.transactions,
    signal: options.signal,
    concurrency: 2,
    // Distinct from the seed's names (slugs, SKUs, uuids are derived from it).
    seedOffset: 1_000_000,
  });
  return { started: () => started, done };
}
