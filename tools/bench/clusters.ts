/**
 * The bench's throwaway clusters: one source (wal_level=logical) and one target per compared system,
 * all with the same durable settings, and the fixture template database in each source.
 */
import { LocalCluster } from "../embedded/localCluster.js";
import type { Cleanup } from "./cleanup.js";
import { checkpoint, createDatabase, withClient } from "./db.js";
import { fixtureStats, generateFixture, type FixtureSize, type FixtureStats } from "./fixture.js";
import { workloadSql } from "./workload.js";

/** The fixture every system's source databases are cloned from. */
export const TEMPLATE_DB = "bench_fixture";

/**
 * Identical on every cluster and durable (fsync and synchronous_commit stay on); room for the
 * backlog's WAL without a forced checkpoint in the middle of a measurement.
 *
 * wal_retrieve_retry_interval: PostgreSQL 15's logical replication launcher starts a worker at
 * most once per interval; woken (by ALTER SUBSCRIPTION ENABLE) sooner than that after it last
 * started one, it sleeps a whole interval (5 s by default) before starting it. A native drain
 * re-enables its subscription a few seconds after the worker was launched, so that sleep landed in
 * native's drain time. 100 ms keeps it out; it changes nothing else the bench measures (the setting
 * also paces restarts of failed workers, and a standby's WAL retries; the pgferry clusters run no
 * subscriptions).
 */
export const CLUSTER_SETTINGS = { max_wal_size: "'4GB'", max_sync_workers_per_subscription: 4, wal_retrieve_retry_interval: "'100ms'" };

export interface ClusterPair {
  source: LocalCluster;
  target: LocalCluster;
}

async function startCluster(name: string, cleanup: Cleanup): Promise<LocalCluster> {
  const cluster = await LocalCluster.start({ name, settings: CLUSTER_SETTINGS });
  cleanup.add(`cluster ${name}`, () => cluster.destroy());
  return cluster;
}

export async function startPair(system: string, cleanup: Cleanup): Promise<ClusterPair> {
  const [source, target] = await Promise.all([startCluster(`bench-${system}-source`, cleanup), startCluster(`bench-${system}-target`, cleanup)]);
  return { source, target };
}

/** Creates the fixture template (data + workload functions) in `source` and measures it. */
export async function createTemplate(source: LocalCluster, size: FixtureSize, cleanup: Cleanup): Promise<FixtureStats> {
  await createDatabase(source, TEMPLATE_DB, cleanup);
  const stats = await withClient(source.url(TEMPLATE_DB), async (c) => {
    await generateFixture(c, size);
    await c.query(workloadSql(size));
    return fixtureStats(c);
  });
  await checkpoint(source);
  return stats;
}
