/**
 * `npm run demo`. The full demo (two throwaway clusters, a seeded old flat project, pgferry
 * streaming it into domain schemas with live metrics) lands with the replication core; until then
 * this proves the embedded clusters start here and says what the demo will do.
 */
import pg from "pg";
import { LocalCluster } from "../embedded/localCluster.js";

const steps = [
  "start two throwaway PostgreSQL clusters (source with wal_level=logical, target), both with pgvector",
  "seed a small old flat project in the source's public schema (memory entries with vectors, keys, users, ...)",
  "run pgferry with config/reorg.example.yaml: snapshot, then live streaming into the domain schemas",
  "drive live writes and show snapshot progress, changes/s and lag; serve /metrics and the status page",
  "Ctrl-C stops everything and removes the clusters (--keep leaves them)",
];

async function main(): Promise<void> {
  process.stdout.write(`pgferry demo — what it will do:\n${steps.map((s, i) => `  ${i + 1}. ${s}`).join("\n")}\n\n`);
  const clusters = await Promise.all([LocalCluster.start({ name: "demo-source" }), LocalCluster.start({ name: "demo-target" })]);
  try {
    for (const cluster of clusters) {
      const client = new pg.Client({ connectionString: cluster.url() });
      await client.connect();
      const { rows } = await client.query<{ version: string; wal_level: string }>("SELECT version(), current_setting('wal_level') AS wal_level");
      await client.end();
      process.stdout.write(`  ${cluster.name}: ${rows[0]?.version.split(",")[0]} on port ${cluster.port}, wal_level=${rows[0]?.wal_level}\n`);
    }
    process.stdout.write("\nThe clusters start; the replication demo arrives with the replication core.\n");
  } finally {
    await Promise.all(clusters.map((c) => c.destroy()));
  }
}

await main();
