/**
 * The mixed write workload, as SQL in the source so that generating it costs no round trips: one
 * call of `bench_tx(n)` is one transaction of exactly 8 row changes (2 event-log inserts, 1
 * partitioned usage insert, 1 keyless audit insert, 2 updates of hot profile rows, 1 event-log
 * delete, 1 embedding update). `n` makes every transaction distinct and the run reproducible, so
 * pgferry and native replication receive the same changes.
 */
import type pg from "pg";
import { connect } from "./db.js";
import { VECTOR_POOL, type FixtureSize } from "./fixture.js";
import { sleep } from "./poll.js";

export const CHANGES_PER_TRANSACTION = 8;

/** Ids of inserted rows start here, far above the seeded ones. */
export const NEW_IDS = 1_000_000_000;

/** Ids the two lanes of bench_lane_tx insert: lane 0 from here, lane 1 from here + 10^8. */
export const LANE_IDS = 1_500_000_000;

export function workloadSql(s: FixtureSize): string {
  return `
CREATE FUNCTION bench_tx(n bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO event_log (id, user_id, kind, at, ok) VALUES
    (${NEW_IDS} + 2 * n, n % ${s.profiles} + 1, 'bench', now(), true),
    (${NEW_IDS} + 2 * n + 1, (n + 1) % ${s.profiles} + 1, 'bench', now(), false);
  INSERT INTO usage_analytics (id, at, user_id, metric, quantity, cost)
    VALUES (${NEW_IDS} + n, timestamptz '2025-01-01 00:00+00' + (n % 365) * interval '1 day', n % ${s.profiles} + 1, 'tokens', n % 1000, (n % 1000) * 0.000002);
  INSERT INTO audit_trail (actor, action, target, at) VALUES ('user' || n % ${s.profiles}, 'bench', 'memory:' || n, now());
  UPDATE user_profiles SET login_count = login_count + 1, last_login_at = now(),
         settings = jsonb_set(settings, '{last_n}', to_jsonb(n)), updated_at = now()
   WHERE id = (2 * n) % ${s.hotProfiles} + 1;
  UPDATE user_profiles SET login_count = login_count + 1, last_login_at = now(),
         settings = jsonb_set(settings, '{last_n}', to_jsonb(n)), updated_at = now()
   WHERE id = (2 * n + 1) % ${s.hotProfiles} + 1;
  DELETE FROM event_log WHERE id = n % ${s.events} + 1;
  UPDATE memory_entries SET embedding = (SELECT v FROM bench_vectors WHERE id = (n * 7) % ${VECTOR_POOL} + 1), updated_at = now()
   WHERE id = n % ${s.memoryEntries} + 1;
END $$;

CREATE PROCEDURE bench_backlog(first bigint, count bigint) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN first .. first + count - 1 LOOP
    PERFORM bench_tx(i);
    COMMIT;
  END LOOP;
END $$;`;
}

/**
 * The same shape of transaction for the bidirectional scenario, in one of two lanes that write
 * disjoint rows (so the two sides' writes never conflict): `bench_lane_tx(lane, n)` is 8 row changes
 * like `bench_tx(n)`, but inserts keys of its lane's own range and updates and deletes rows of its
 * lane's half of the hot profiles, the memory entries and the top of the event log (the drain
 * workload deletes from the bottom).
 */
export function laneWorkloadSql(s: FixtureSize): string {
  const hot = Math.max(1, Math.floor(s.hotProfiles / 2));
  const memory = Math.max(1, Math.floor(s.memoryEntries / 2));
  const events = Math.max(1, Math.floor(s.events / 4));
  return `
CREATE FUNCTION bench_lane_tx(lane int, n bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  base bigint := ${LANE_IDS} + lane * 100000000::bigint;
BEGIN
  INSERT INTO event_log (id, user_id, kind, at, ok) VALUES
    (base + 2 * n, n % ${s.profiles} + 1, 'lane', now(), true),
    (base + 2 * n + 1, (n + 1) % ${s.profiles} + 1, 'lane', now(), false);
  INSERT INTO usage_analytics (id, at, user_id, metric, quantity, cost)
    VALUES (base + n, timestamptz '2025-01-01 00:00+00' + (n % 365) * interval '1 day', n % ${s.profiles} + 1, 'tokens', n % 1000, (n % 1000) * 0.000002);
  INSERT INTO audit_trail (actor, action, target, at) VALUES ('lane' || lane, 'bench', 'memory:' || n, now());
  UPDATE user_profiles SET login_count = login_count + 1, last_login_at = now(),
         settings = jsonb_set(settings, '{last_n}', to_jsonb(n)), updated_at = now()
   WHERE id = lane * ${hot} + (2 * n) % ${hot} + 1;
  UPDATE user_profiles SET login_count = login_count + 1, last_login_at = now(),
         settings = jsonb_set(settings, '{last_n}', to_jsonb(n)), updated_at = now()
   WHERE id = lane * ${hot} + (2 * n + 1) % ${hot} + 1;
  DELETE FROM event_log WHERE id = ${s.events} - lane * ${events} - n % ${events};
  UPDATE memory_entries SET embedding = (SELECT v FROM bench_vectors WHERE id = (n * 7) % ${VECTOR_POOL} + 1), updated_at = now()
   WHERE id = lane * ${memory} + n % ${memory} + 1;
END $$;`;
}

/**
 * Runs transactions [first, first + count) as fast as the source takes them, split over `sessions`
 * connections. Source commits are asynchronous here: only the source's speed of producing the
 * backlog is affected, not what is replicated. `searchPath`: where the workload finds its tables and
 * functions, when not in the default (the new side: its tables in the target schema).
 */
export async function runBacklog(sourceUrl: string, first: number, count: number, sessions = 2, searchPath?: string): Promise<number> {
  const started = performance.now();
  const per = Math.ceil(count / sessions);
  await Promise.all(
    Array.from({ length: sessions }, async (_, i) => {
      const from = first + i * per;
      const n = Math.min(per, first + count - from);
      if (n <= 0) return;
      const client = await connect(sourceUrl, "pgferry-bench-workload");
      try {
        await client.query("SET synchronous_commit = off");
        if (searchPath !== undefined) await client.query(`SET search_path = ${searchPath}`);
        await client.query("CALL bench_backlog($1, $2)", [from, n]);
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

export interface SteadyResult {
  transactions: number;
  seconds: number;
}

/**
 * `rate` transactions per second for `seconds`, starting at transaction `first`, on one connection
 * with durable commits. Behind schedule it catches up without sleeping. `statement` runs one
 * transaction, given its number as $1.
 */
export async function runSteady(client: pg.Client, first: number, rate: number, seconds: number, statement = "SELECT bench_tx($1)"): Promise<SteadyResult> {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  for (let i = 0; i < total; i += 1) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    await client.query(statement, [first + i]);
  }
  return { transactions: total, seconds: (performance.now() - started) / 1000 };
}
