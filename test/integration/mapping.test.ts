/**
 * The mapping language end to end: move + rename + constant + derived columns + casts, a merge of two
 * key tables with derived uuid keys and a discriminator, a split of users into two domain tables
 * with a row filter on one and a code hook on the other. The expected target rows are computed by
 * hand-written SQL over the source (independent of the compiler) and compared row by row, after the
 * snapshot and again after streamed inserts, updates (filter in/out, key change, unchanged TOAST),
 * deletes and a TRUNCATE of one merged source.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { firstDifference } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { useTestPair } from "../harness/testPair.js";
import { runCli } from "../harness/processRunner.js";
import { streaming, type RunningPipeline } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";

const SOURCE_DDL = `
CREATE TYPE memory_kind AS ENUM ('note', 'fact');
CREATE TABLE memory_entries (id bigint PRIMARY KEY, memory_type memory_kind NOT NULL, content text, embedding vector(1536),
  legacy_flag boolean, is_active boolean NOT NULL DEFAULT true, meta json);
ALTER TABLE memory_entries ALTER COLUMN content SET STORAGE EXTERNAL;
CREATE TABLE api_keys (id serial PRIMARY KEY, key_hash text NOT NULL, is_active boolean NOT NULL);
CREATE TABLE vendor_api_keys (id serial PRIMARY KEY, vendor text NOT NULL, key_hash text NOT NULL, revoked boolean NOT NULL);
CREATE TABLE users (id bigint PRIMARY KEY, email varchar(200) NOT NULL, display_name text, bio text, deleted_at timestamptz);
CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, n int);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE error_logs (id int PRIMARY KEY, level text NOT NULL, stack text);
ALTER TABLE error_logs ALTER COLUMN stack SET STORAGE EXTERNAL;`;

const TARGET_DDL = `
CREATE SCHEMA security_service; CREATE SCHEMA auth_gateway; CREATE SCHEMA shared_services;
CREATE TABLE security_service.memory_entries (id bigint PRIMARY KEY, type text NOT NULL, content text, embedding vector(1536),
  customer_id int NOT NULL, status text NOT NULL, meta jsonb);
CREATE TABLE security_service.api_keys (id uuid PRIMARY KEY, source text NOT NULL, legacy_id text NOT NULL, key_hash text NOT NULL, status text NOT NULL);
CREATE TABLE auth_gateway.user_accounts (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE shared_services.profiles (user_id bigint PRIMARY KEY, display_name text, bio text);
CREATE TABLE shared_services.docs (id int PRIMARY KEY, body text NOT NULL, n int);
CREATE TABLE shared_services.errors (id int PRIMARY KEY, level text NOT NULL, stack text);`;

const MAPPING = `
  - from: public.memory_entries
    to: security_service.memory_entries
    columns:
      type: memory_type
      customer_id: { value: 1 }
      status: { sql: "CASE WHEN is_active THEN 'active' ELSE 'revoked' END" }
    exclude: [legacy_flag, is_active]
  - from: public.api_keys
    to: security_service.api_keys
    passthrough: false
    columns:
      id: { sql: "md5('api_keys:' || id)::uuid" }
      source: { value: api_keys }
      legacy_id: { sql: "id::text" }
      key_hash: key_hash
      status: { sql: "CASE WHEN is_active THEN 'active' ELSE 'revoked' END" }
  - from: public.vendor_api_keys
    to: security_service.api_keys
    passthrough: false
    columns:
      id: { sql: "md5('vendor_api_keys:' || id)::uuid" }
      source: { value: vendor_api_keys }
      legacy_id: { sql: "vendor || ':' || id" }
      key_hash: key_hash
      status: { sql: "CASE WHEN revoked THEN 'revoked' ELSE 'active' END" }
  - from: public.users
    to: auth_gateway.user_accounts
    passthrough: false
    columns: { id: id, email: email }
    where: "deleted_at IS NULL"
  - from: public.users
    to: shared_services.profiles
    passthrough: false
    columns: { user_id: id, display_name: display_name, bio: bio }
    hook: ./profileHook.mjs
  - from: public.docs
    to: shared_services.docs
  - from: public.error_logs
    to: shared_services.errors
    where: "level = 'error'"`;

const HOOK = `export default function (row, context) {
  if (context.op === "delete") return null;
  return { ...row, display_name: row.display_name === null ? null : row.display_name.toUpperCase() };
}`;

/** What each target table must hold, computed from the source by SQL written for the test. */
const EXPECTED = [
  {
    target: "SELECT t::text FROM (SELECT id, type, content, embedding, customer_id, status, meta FROM security_service.memory_entries) t ORDER BY 1",
    source: `SELECT t::text FROM (SELECT id, memory_type::text AS type, content, embedding, 1 AS customer_id,
               CASE WHEN is_active THEN 'active' ELSE 'revoked' END AS status, meta::jsonb AS meta FROM memory_entries) t ORDER BY 1`,
  },
  {
    target: "SELECT t::text FROM (SELECT id, source, legacy_id, key_hash, status FROM security_service.api_keys) t ORDER BY 1",
    source: `SELECT t::text FROM (
               SELECT md5('api_keys:' || id)::uuid AS id, 'api_keys' AS source, id::text AS legacy_id, key_hash,
                      CASE WHEN is_active THEN 'active' ELSE 'revoked' END AS status FROM api_keys
               UNION ALL
               SELECT md5('vendor_api_keys:' || id)::uuid, 'vendor_api_keys', vendor || ':' || id, key_hash,
                      CASE WHEN revoked THEN 'revoked' ELSE 'active' END FROM vendor_api_keys) t ORDER BY 1`,
  },
  {
    target: "SELECT t::text FROM auth_gateway.user_accounts t ORDER BY 1",
    source: "SELECT t::text FROM (SELECT id, email::text AS email FROM users WHERE deleted_at IS NULL) t ORDER BY 1",
  },
  {
    target: "SELECT t::text FROM shared_services.profiles t ORDER BY 1",
    source: "SELECT t::text FROM (SELECT id AS user_id, upper(display_name) AS display_name, bio FROM users) t ORDER BY 1",
  },
  { target: "SELECT t::text FROM shared_services.docs t ORDER BY 1", source: "SELECT t::text FROM docs t ORDER BY 1" },
  { target: "SELECT t::text FROM shared_services.errors t ORDER BY 1", source: "SELECT t::text FROM error_logs t WHERE level = 'error' ORDER BY 1" },
];

let db: TestDatabases;
let running: RunningPipeline | undefined;
let configDir: string;

async function difference(): Promise<string | null> {
  for (const { source, target } of EXPECTED) {
    const [expected, actual] = await Promise.all([db.source.query<{ t: string }>(source), db.target.query<{ t: string }>(target)]);
    const diff = firstDifference(expected.rows.map((r) => r.t), actual.rows.map((r) => r.t));
    if (diff) return `${target}: ${diff}`;
  }
  return null;
}

const converged = () => waitFor(difference, { description: "target == mapped source", until: (d) => d === null, timeoutMs: 60_000, intervalMs: 200 });

function config() {
  const yaml = `source: { url: "\${SOURCE_URL}", slot: pgferry_${db.name}, publication: pgferry_${db.name} }
target: { url: "\${TARGET_URL}" }
snapshot: { workers: 2, chunkRows: 500 }
apply: { retry: { maxAttempts: 5, initialDelayMs: 100, maxDelayMs: 500 } }
log: { level: info, format: json }
tables:${MAPPING}
`;
  return parseConfig(yaml, join(configDir, "pgferry.yaml"), { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
}

const pair = useTestPair("mapping", async (created) => {
  db = created;
  configDir = await mkdtemp(join(tmpdir(), "pgferry-mapping-"));
  await writeFile(join(configDir, "profileHook.mjs"), HOOK);
  await db.source.query(SOURCE_DDL);
  await db.target.query(TARGET_DDL);
  await db.source.query(`
    INSERT INTO memory_entries (id, memory_type, content, embedding, legacy_flag, is_active, meta)
      SELECT g, CASE WHEN g % 2 = 0 THEN 'note' ELSE 'fact' END::memory_kind, repeat(md5(g::text), 200),
             (SELECT ('[' || string_agg(((g * 7 + i) % 101 / 101.0)::real::text, ',') || ']')::vector FROM generate_series(1, 1536) i),
             g % 3 = 0, g % 5 <> 0, json_build_object('g', g, 'big', 9007199254740993)
      FROM generate_series(1, 300) g;
    INSERT INTO api_keys (key_hash, is_active) SELECT md5('k' || g), g % 4 <> 0 FROM generate_series(1, 200) g;
    INSERT INTO vendor_api_keys (vendor, key_hash, revoked) SELECT 'v' || (g % 3), md5('vk' || g), g % 6 = 0 FROM generate_series(1, 200) g;
    INSERT INTO users (id, email, display_name, bio, deleted_at)
      SELECT g, 'u' || g || '@example.com', CASE WHEN g % 7 = 0 THEN NULL ELSE 'name ' || g END, 'bio ' || g,
             CASE WHEN g % 10 = 0 THEN timestamptz '2026-01-01 00:00:00+00' END
      FROM generate_series(1, 400) g;
    INSERT INTO docs SELECT g, repeat(md5(g::text), 100), 0 FROM generate_series(1, 20) g;
    INSERT INTO error_logs SELECT g, CASE WHEN g % 2 = 0 THEN 'error' ELSE 'warning' END, repeat(md5(g::text), 100) FROM generate_series(1, 20) g;`);
});

describe("mapping language", () => {
  it("snapshot: every mapped table equals its SQL-computed expectation", async () => {
    running = pair.start(config());
    await streaming(running);
    expect(await difference()).toBeNull();
    const { rows } = await db.target.query<{ n: string }>("SELECT count(*)::text AS n FROM auth_gateway.user_accounts");
    expect(rows[0]?.n).toBe("360"); // the filter kept 9 of every 10 users
  });

  it("stream: inserts, updates in and out of the filter, key changes, unchanged TOAST, deletes and a merged TRUNCATE", async () => {
    running = pair.start(config());
    await streaming(running);
    const before = await db.target.query<{ content: string; embedding: string }>("SELECT content, embedding::text FROM security_service.memory_entries WHERE id = 4");
    await db.source.query(`
      INSERT INTO memory_entries (id, memory_type, content, is_active, meta) VALUES (1001, 'fact', 'streamed', false, '{"s": 1}');
      UPDATE memory_entries SET is_active = NOT is_active WHERE id IN (4, 5, 6);      -- derived status changes, TOASTed content/vector unchanged
      UPDATE memory_entries SET id = id + 5000 WHERE id = 8;                           -- key change with unchanged TOAST
      UPDATE memory_entries SET memory_type = 'fact', meta = '{"renamed": true}' WHERE id = 10;
      DELETE FROM memory_entries WHERE id = 12;
      INSERT INTO api_keys (key_hash, is_active) VALUES ('new-key', true);
      UPDATE api_keys SET is_active = false WHERE id = 1;
      DELETE FROM api_keys WHERE id = 2;
      UPDATE vendor_api_keys SET revoked = true, vendor = 'v9' WHERE id = 3;
      DELETE FROM vendor_api_keys WHERE id = 5;
      UPDATE users SET deleted_at = now() WHERE id = 1;                                 -- leaves the filter: deleted from user_accounts
      UPDATE users SET deleted_at = NULL WHERE id = 10;                                 -- enters the filter: inserted
      UPDATE users SET email = 'changed@example.com', display_name = 'renamed' WHERE id = 2;
      UPDATE users SET id = 9001 WHERE id = 3;                                          -- key change through a split
      DELETE FROM users WHERE id IN (4, 20);
      INSERT INTO users (id, email, display_name) VALUES (5000, 'new@example.com', 'new user');
      UPDATE docs SET n = n + 1 WHERE id <= 5;                                          -- NOT NULL TOASTed body left unchanged
      UPDATE error_logs SET level = 'error' WHERE id IN (1, 3);                         -- enters the filter with its TOASTed stack unchanged
      UPDATE error_logs SET level = 'warning' WHERE id = 2;                             -- leaves the filter
      UPDATE error_logs SET level = 'error' WHERE id = 5; DELETE FROM error_logs WHERE id = 5; -- entered, then gone before it was read`);
    expect(await converged()).toBeNull();
    const after = await db.target.query<{ content: string; embedding: string }>("SELECT content, embedding::text FROM security_service.memory_entries WHERE id = 4");
    expect(after.rows[0]).toEqual(before.rows[0]);
    expect(after.rows[0]?.content.length).toBe(6400);

    const apiRows = async () => (await db.target.query<{ source: string; n: string }>("SELECT source, count(*)::text AS n FROM security_service.api_keys GROUP BY 1 ORDER BY 1")).rows;
    expect(await apiRows()).toEqual([{ source: "api_keys", n: "200" }, { source: "vendor_api_keys", n: "199" }]);
    await db.source.query("TRUNCATE vendor_api_keys");
    await db.source.query("INSERT INTO vendor_api_keys (vendor, key_hash, revoked) VALUES ('v1', 'after-truncate', false)");
    expect(await converged()).toBeNull();
    // The truncate of one merged source left the other source's rows alone.
    expect(await apiRows()).toEqual([{ source: "api_keys", n: "200" }, { source: "vendor_api_keys", n: "1" }]);
  });

  it("resumes after a stop with streamed and snapshotted rows still equal to the expectation", async () => {
    await db.source.query("UPDATE users SET bio = 'while stopped' WHERE id BETWEEN 100 AND 120; UPDATE memory_entries SET is_active = true");
    running = pair.start(config());
    expect(await converged()).toBeNull();
  });
});

describe("invalid mappings", () => {
  it("fail at start-up with every problem named", async () => {
    const bad = `
  - from: public.users
    to: auth_gateway.user_accounts
    columns: { nope: id, email: missing_column }
  - from: public.users
    to: shared_services.profiles
    passthrough: false
    columns: { display_name: display_name, bio: bio }
  - from: public.api_keys
    to: security_service.api_keys
    passthrough: false
    columns: { id: { sql: "md5(id::text)::uuid" }, source: { value: a }, legacy_id: { sql: "id::text" }, key_hash: key_hash, status: { sql: "CASE WHEN is_active THEN 'x' ELS 'y' END" } }
  - from: public.vendor_api_keys
    to: security_service.api_keys
    passthrough: false
    columns: { id: { sql: "md5(id::text)::uuid" }, source: { value: a }, legacy_id: vendor, key_hash: key_hash, status: { value: active } }`;
    const yaml = `source: { url: "\${SOURCE_URL}", slot: pgferry_bad_${db.name} }
target: { url: "\${TARGET_URL}" }
tables:${bad}
`;
    running = pair.start(parseConfig(yaml, join(configDir, "bad.yaml"), { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl }));
    const error = (await running.done.then(() => null, (e: unknown) => e)) as { problems?: string[] } | null;
    expect(error?.problems).toEqual([
      "tables[0].columns.nope: target table auth_gateway.user_accounts has no column nope",
      "tables[0].columns.email: source table public.users has no column missing_column",
      "tables[0]: target table auth_gateway.user_accounts has no column display_name (source public.users.display_name); map it in columns or list it in exclude",
      "tables[0]: target table auth_gateway.user_accounts has no column bio (source public.users.bio); map it in columns or list it in exclude",
      "tables[0]: target table auth_gateway.user_accounts has no column deleted_at (source public.users.deleted_at); map it in columns or list it in exclude",
      "tables[0]: target column auth_gateway.user_accounts.email is NOT NULL without a default and nothing maps to it",
      "tables[1]: target column shared_services.profiles.user_id is NOT NULL without a default and nothing maps to it",
      "tables[3]: its rows cannot be told apart from those of tables[2] in security_service.api_keys; give both a discriminator column with different constant values",
    ]);
  });

  it("reject an expression the source cannot parse", async () => {
    const yaml = `source: { url: "\${SOURCE_URL}", slot: pgferry_bad2_${db.name} }
target: { url: "\${TARGET_URL}" }
tables:
  - from: public.users
    to: auth_gateway.user_accounts
    passthrough: false
    columns: { id: id, email: { sql: "lower(email" } }
`;
    running = pair.start(parseConfig(yaml, join(configDir, "bad2.yaml"), { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl }));
    const error = (await running.done.then(() => null, (e: unknown) => e)) as { problems?: string[] } | null;
    expect(error?.problems).toEqual([
      "tables[0]: the source rejects the mapping's SQL for public.users → auth_gateway.user_accounts: syntax error at or near \"FROM\"",
    ]);
  });
});

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const run = runCli(args, env);
  const { code } = await run.exited;
  return { code, output: run.output.join("") };
}

describe("pgferry plan", () => {
  it("prints each target column's origin, key, filter and discriminator", async () => {
    const file = join(configDir, "plan.yaml");
    await writeFile(file, `source:\n  url: \${SOURCE_URL}\ntarget:\n  url: \${TARGET_URL}\ntables:${MAPPING}\n`);
    const { code, output } = await cli(["plan", "--config", file], { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
    expect(output).toContain("public.memory_entries  (key: id)");
    expect(output).toContain("  -> security_service.memory_entries  [tables[0]; snapshot: SQL pushdown, text COPY pipe]");
    expect(output).toMatch(/ type +<- memory_type\n/);
    expect(output).toMatch(/ status +<- CASE WHEN is_active THEN 'active' ELSE 'revoked' END \(sql\)\n/);
    expect(output).toMatch(/ id +<- md5\('vendor_api_keys:' \|\| id\)::uuid \(sql\) \[key\]\n/);
    expect(output).toContain("rows of this source: source = 'vendor_api_keys'");
    expect(output).toContain("where deleted_at IS NULL");
    expect(output).toContain("snapshot: code path (hook)");
    expect(code).toBe(0);
  });

  it("--ddl derives target tables that --check then accepts", async () => {
    const fresh = await createTestDatabases("mapping_ddl");
    try {
      await fresh.source.query(SOURCE_DDL);
      await fresh.source.query("INSERT INTO users (id, email, display_name) SELECT g, 'd' || g, 'n' || g FROM generate_series(1, 50) g");
      await fresh.source.query("INSERT INTO vendor_api_keys (vendor, key_hash, revoked) VALUES ('v', 'h', false)");
      const file = join(configDir, "ddl.yaml");
      await writeFile(file, `source:\n  url: \${SOURCE_URL}\n  slot: pgferry_${fresh.name}\n  publication: pgferry_${fresh.name}\ntarget:\n  url: \${TARGET_URL}\ntables:${MAPPING}\n`);
      const env = { SOURCE_URL: fresh.sourceUrl, TARGET_URL: fresh.targetUrl };
      const before = await cli(["plan", "--check", "--config", file], env);
      expect(before.code).toBe(1);
      expect(before.output).toContain("tables[0].to: target table security_service.memory_entries does not exist");
      const ddl = await cli(["plan", "--ddl", "--config", file], env);
      expect(ddl.code).toBe(0);
      expect(ddl.output).toContain('CREATE TABLE IF NOT EXISTS "security_service"."api_keys" (\n  "id" uuid NOT NULL,');
      expect(ddl.output).toContain('"type" text NOT NULL'); // the enum became text
      await fresh.target.query(ddl.output);
      const after = await cli(["plan", "--check", "--config", file], env);
      expect(after.output).toContain("check: no problems found");
      expect(after.code).toBe(0);
    } finally {
      await fresh.drop();
    }
  });
});
