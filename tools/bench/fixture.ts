/**
 * The old-project fixture the bench replicates, in the source's `public` schema: memory entries
 * with 1536-d embeddings and text, a wide jsonb table (user profiles, whose first rows are the hot
 * rows of the workload), a narrow event log with many rows, a monthly-partitioned usage table
 * (published via its root) and a keyless audit table (REPLICA IDENTITY FULL). `bench_heartbeat`
 * carries the lag probes and drain markers. At scale 1 the tables hold about 200 MB.
 *
 * The same DDL (`tableDdl`) creates the target tables: in `app` for pgferry, in `public` for native
 * logical replication, which needs the same names on both sides.
 */
import type pg from "pg";
import { quoteIdent } from "./db.js";

export const FIXTURE_TABLES = ["memory_entries", "user_profiles", "event_log", "usage_analytics", "audit_trail", "bench_heartbeat"] as const;
export type FixtureTable = (typeof FIXTURE_TABLES)[number];

export interface FixtureSize {
  memoryEntries: number;
  profiles: number;
  events: number;
  usage: number;
  audit: number;
  /** Profiles the workload updates over and over. */
  hotProfiles: number;
}

export function fixtureSize(scale: number): FixtureSize {
  const n = (base: number) => Math.max(10, Math.round(base * scale));
  return { memoryEntries: n(15_000), profiles: n(20_000), events: n(400_000), usage: n(200_000), audit: n(100_000), hotProfiles: Math.min(1_000, n(20_000)) };
}

/** Months of `usage_analytics` partitions: 2025-01 … 2025-12. */
const USAGE_MONTHS = Array.from({ length: 12 }, (_, i) => `2025-${String(i + 1).padStart(2, "0")}`);

function nextMonth(month: string): string {
  const [year, m] = month.split("-").map(Number) as [number, number];
  return m === 12 ? `${year + 1}-01` : `${year}-${String(m + 1).padStart(2, "0")}`;
}

/** CREATE TABLE (and partitions, indexes) for fixture table `table`, created as `schema.name`. */
export function tableDdl(table: FixtureTable, schema: string, name: string = table): string {
  const t = `${quoteIdent(schema)}.${quoteIdent(name)}`;
  switch (table) {
    case "memory_entries":
      return `CREATE TABLE ${t} (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL,
  kind text NOT NULL,
  content text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  embedding vector(1536),
  importance real NOT NULL DEFAULT 0.5,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON ${t} (user_id);`;
    case "user_profiles":
      return `CREATE TABLE ${t} (
  id bigint PRIMARY KEY,
  email text NOT NULL,
  display_name text,
  first_name text,
  last_name text,
  company text,
  plan text NOT NULL DEFAULT 'free',
  locale text,
  timezone text,
  country char(2),
  avatar_url text,
  settings jsonb NOT NULL DEFAULT '{}',
  preferences jsonb,
  feature_flags jsonb,
  login_count integer NOT NULL DEFAULT 0,
  last_login_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now());`;
    case "event_log":
      return `CREATE TABLE ${t} (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL,
  kind text NOT NULL,
  at timestamptz NOT NULL,
  ok boolean NOT NULL);
CREATE INDEX ON ${t} (user_id, at);`;
    case "usage_analytics":
      return [
        `CREATE TABLE ${t} (
  id bigint NOT NULL,
  at timestamptz NOT NULL,
  user_id bigint NOT NULL,
  metric text NOT NULL,
  quantity numeric(14,3) NOT NULL,
  cost numeric(14,6) NOT NULL,
  PRIMARY KEY (id, at)) PARTITION BY RANGE (at);`,
        ...USAGE_MONTHS.map(
          (month) =>
            `CREATE TABLE ${quoteIdent(schema)}.${quoteIdent(`${name}_${month.replace("-", "_")}`)} PARTITION OF ${t} ` +
            `FOR VALUES FROM ('${month}-01 00:00+00') TO ('${nextMonth(month)}-01 00:00+00');`,
        ),
      ].join("\n");
    case "audit_trail":
      return `CREATE TABLE ${t} (
  actor text NOT NULL,
  action text NOT NULL,
  target text,
  at timestamptz NOT NULL);
ALTER TABLE ${t} REPLICA IDENTITY FULL;`;
    case "bench_heartbeat":
      return `CREATE TABLE ${t} (
  id bigint PRIMARY KEY,
  sent_at timestamptz NOT NULL);`;
  }
}

/** The whole replicated schema in `schema` (created if missing), as pgvector's `vector` is known. */
export function schemaDdl(schema: string): string {
  return [`CREATE EXTENSION IF NOT EXISTS vector;`, `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)};`, ...FIXTURE_TABLES.map((t) => tableDdl(t, schema))].join("\n");
}

/** Distinct embeddings the fixture and the workload draw from (random, not compressible). */
export const VECTOR_POOL = 512;

const DATA_SQL: readonly ((s: FixtureSize) => string)[] = [
  // Seeded: every source cluster gets the same embeddings.
  () => `SELECT setseed(0.5);
CREATE TABLE bench_vectors (id int PRIMARY KEY, v vector(1536) NOT NULL);
INSERT INTO bench_vectors
SELECT i, (SELECT array_agg((random() - 0.5)::real) FROM generate_series(1, 1536 + i * 0))::vector
FROM generate_series(1, ${VECTOR_POOL}) AS i;`,
  (s) => `INSERT INTO memory_entries (id, user_id, kind, content, metadata, embedding, importance, created_at, updated_at)
SELECT g, g % ${s.profiles} + 1, (ARRAY['fact', 'preference', 'summary', 'episode'])[g % 4 + 1],
       (SELECT string_agg(md5(g::text || ':' || i), ' ') FROM generate_series(1, 8 + g % 40) AS i),
       jsonb_build_object('source', 'chat', 'conversation', g / 7, 'tokens', 100 + g % 900, 'tags', jsonb_build_array('t' || g % 13, 't' || g % 29)),
       v.v, (g % 100) / 100.0,
       timestamptz '2025-01-01 00:00+00' + g * interval '17 minutes', timestamptz '2025-06-01 00:00+00' + g * interval '3 minutes'
FROM generate_series(1, ${s.memoryEntries}) AS g
JOIN bench_vectors v ON v.id = g % ${VECTOR_POOL} + 1;`,
  (s) => `INSERT INTO user_profiles (id, email, display_name, first_name, last_name, company, plan, locale, timezone, country, avatar_url,
                           settings, preferences, feature_flags, login_count, last_login_at, created_at, updated_at)
SELECT g, 'user' || g || '@example.com', 'User ' || g, 'First' || g % 977, 'Last' || g % 1931, 'Company ' || g % 211,
       (ARRAY['free', 'pro', 'team', 'enterprise'])[g % 4 + 1], (ARRAY['en-US', 'de-DE', 'fr-FR', 'ja-JP'])[g % 4 + 1],
       (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[g % 4 + 1], (ARRAY['US', 'DE', 'FR', 'JP'])[g % 4 + 1],
       'https://cdn.example.com/avatars/' || md5(g::text) || '.png',
       jsonb_build_object(
         'theme', (ARRAY['dark', 'light'])[g % 2 + 1],
         'notifications', jsonb_build_object('email', g % 2 = 0, 'push', g % 3 = 0, 'digest', 'weekly'),
         'recent', (SELECT jsonb_agg(jsonb_build_object('id', md5(g::text || i::text), 'at', g * 1000 + i, 'kind', 'view'))
                    FROM generate_series(1, 12 + g * 0) AS i)),
       jsonb_build_object('language', 'en', 'shortcuts', jsonb_build_array('ctrl+k', 'ctrl+p'), 'density', 'compact'),
       jsonb_build_object('beta_search', g % 5 = 0, 'new_editor', g % 7 = 0),
       g % 500, timestamptz '2025-06-01 00:00+00' + g * interval '1 minute',
       timestamptz '2024-01-01 00:00+00' + g * interval '1 hour', timestamptz '2025-06-01 00:00+00' + g * interval '1 minute'
FROM generate_series(1, ${s.profiles}) AS g;`,
  (s) => `INSERT INTO event_log (id, user_id, kind, at, ok)
SELECT g, g % ${s.profiles} + 1, (ARRAY['login', 'logout', 'search', 'view', 'click'])[g % 5 + 1],
       timestamptz '2025-01-01 00:00+00' + g * interval '7 seconds', g % 17 <> 0
FROM generate_series(1, ${s.events}) AS g;`,
  (s) => `INSERT INTO usage_analytics (id, at, user_id, metric, quantity, cost)
SELECT g, timestamptz '2025-01-01 00:00+00' + (g % 365) * interval '1 day' + (g % 86400) * interval '1 second',
       g % ${s.profiles} + 1, (ARRAY['tokens', 'requests', 'storage_mb'])[g % 3 + 1], (g % 10000) / 7.0, (g % 10000) * 0.0000123
FROM generate_series(1, ${s.usage}) AS g;`,
  (s) => `INSERT INTO audit_trail (actor, action, target, at)
SELECT 'user' || g % ${s.profiles}, (ARRAY['create', 'update', 'delete', 'share'])[g % 4 + 1], 'memory:' || g,
       timestamptz '2025-01-01 00:00+00' + g * interval '13 seconds'
FROM generate_series(1, ${s.audit}) AS g;`,
];

/** Creates and fills the fixture in the source database `client` is connected to (public schema). */
export async function generateFixture(client: pg.ClientBase, size: FixtureSize): Promise<void> {
  await client.query(schemaDdl("public"));
  for (const sql of DATA_SQL) await client.query(sql(size));
  // Statistics and visibility map as on a long-lived database; row estimates size the copy chunks.
  await client.query("VACUUM ANALYZE");
}

export interface FixtureStats {
  rows: number;
  /** Heap + TOAST of the replicated tables (what is copied), bytes. */
  bytes: number;
  tables: Record<string, { rows: number; bytes: number }>;
}

export async function fixtureStats(client: pg.ClientBase, schema = "public"): Promise<FixtureStats> {
  const tables: FixtureStats["tables"] = {};
  for (const table of FIXTURE_TABLES) {
    const name = `${quoteIdent(schema)}.${quoteIdent(table)}`;
    const { rows } = await client.query<{ rows: string; bytes: string }>(
      `SELECT (SELECT count(*) FROM ${name})::text AS rows,
              coalesce((SELECT sum(pg_table_size(relid)) FROM pg_partition_tree('${name}'::regclass) WHERE isleaf),
                       pg_table_size('${name}'::regclass))::text AS bytes`,
    );
    tables[table] = { rows: Number(rows[0]!.rows), bytes: Number(rows[0]!.bytes) };
  }
  const all = Object.values(tables);
  return { rows: all.reduce((a, t) => a + t.rows, 0), bytes: all.reduce((a, t) => a + t.bytes, 0), tables };
}
