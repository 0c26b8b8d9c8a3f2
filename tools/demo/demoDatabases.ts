/**
 * The demo's two throwaway clusters: a source holding the old flat project (seeded) and a target
 * holding the empty domain schemas that config/reorg.example.yaml maps into. Both have a database
 * `app` with pgvector.
 */
import pg from "pg";
import { LocalCluster } from "../embedded/localCluster.js";
import { seedOldProject, SOURCE_DDL, TARGET_DDL } from "./oldProject.js";

export const DATABASE = "app";

export interface DemoDatabases {
  source: LocalCluster;
  target: LocalCluster;
  sourceUrl: string;
  targetUrl: string;
}

async function withPool<T>(url: string, use: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 2, application_name: "pgferry-demo-setup" });
  pool.on("error", () => undefined); // an idle client dropped by a stopping server; the query that needs it reports
  try {
    return await use(pool);
  } finally {
    await pool.end();
  }
}

async function createDatabase(cluster: LocalCluster): Promise<string> {
  await withPool(cluster.url(), (pool) => pool.query(`CREATE DATABASE ${DATABASE}`));
  const url = cluster.url(DATABASE);
  await withPool(url, (pool) => pool.query("CREATE EXTENSION vector"));
  return url;
}

/**
 * Starts both clusters under `baseDir`. `onCluster` receives each one as soon as it runs, so the
 * caller can remove it even when a later step (or the other cluster) fails.
 */
export async function startClusters(baseDir: string, onCluster: (cluster: LocalCluster) => void): Promise<{ source: LocalCluster; target: LocalCluster }> {
  const start = async (name: string) => {
    const cluster = await LocalCluster.start({ name, baseDir });
    onCluster(cluster);
    return cluster;
  };
  const [source, target] = await Promise.allSettled([start("demo-source"), start("demo-target")]);
  if (source.status === "rejected") throw source.reason;
  if (target.status === "rejected") throw target.reason;
  return { source: source.value, target: target.value };
}

/** Creates `app` in both, the old project (seeded at `scale`) in the source, the domain schemas in the target. */
export async function prepareDatabases(source: LocalCluster, target: LocalCluster, scale: number): Promise<DemoDatabases> {
  const [sourceUrl, targetUrl] = await Promise.all([createDatabase(source), createDatabase(target)]);
  await Promise.all([
    withPool(sourceUrl, async (pool) => {
      await pool.query(SOURCE_DDL);
      await seedOldProject(pool, scale);
    }),
    withPool(targetUrl, (pool) => pool.query(TARGET_DDL)),
  ]);
  return { source, target, sourceUrl, targetUrl };
}

/** Rows in the source's tables as of the seed's ANALYZE (leaf partitions included), for the banner. */
export async function sourceRowCount(url: string): Promise<number> {
  return withPool(url, async (pool) => {
    const { rows } = await pool.query<{ n: string }>(
      `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint::text AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind = 'r'`,
    );
    return Number(rows[0]?.n ?? 0);
  });
}
