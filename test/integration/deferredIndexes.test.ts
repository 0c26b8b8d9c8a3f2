/**
 * Secondary indexes built after the initial copy (snapshot.deferIndexes): a target with a btree, a
 * partial, an expression, a GIN and an HNSW index (plus a comment, a statistics target and CLUSTER
 * ON) gets them back exactly as they were (pg_get_indexdef and the rest), rebuilt, while its primary
 * key and unique index are never touched; a table several sources feed is rebuilt once, after the
 * last of them is copied; indexes recorded as dropped by a run that stopped after the copy are
 * rebuilt on the next start; a table pgferry's role does not own keeps its indexes; builds run at most
 * `concurrency` at once, and a stop cancels the running one and refuses those waiting, whose records stay.
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../src/config/index.js";
import { IndexDeferral } from "../../src/pipeline/indexDeferral.js";
import { endpoint } from "../../src/sql/endpoint.js";
import { DeferredIndexStore } from "../../src/state/deferredIndexes.js";
import { compareTables, type TablePair } from "../harness/compare.js";
import { capturingLogger, streaming } from "../harness/pipelineRunner.js";
import { useTestPair } from "../harness/testPair.js";
import { waitFor } from "../harness/waitFor.js";

const ROWS = 3000;
const DIMS = 16;

const ITEMS = (schema: string) => `
CREATE TABLE ${schema}.items (
  id bigint PRIMARY KEY, email text NOT NULL, status text NOT NULL, score int NOT NULL, tags text[] NOT NULL, embedding vector(${DIMS}) NOT NULL);`;

const NOTES = (table: string) => `CREATE TABLE ${table} (id int PRIMARY KEY, body text NOT NULL);`;

/** Every kind of deferrable index, plus what an index carries beside its definition, and the two kinds that must stay. */
const TARGET_INDEXES = `
CREATE INDEX items_score_idx ON app.items (score);
CREATE INDEX items_active_idx ON app.items (id) WHERE status = 'active';
CREATE INDEX items_lower_email_idx ON app.items (lower(email));
ALTER INDEX app.items_lower_email_idx ALTER COLUMN 1 SET STATISTICS 300;
CREATE UNIQUE INDEX items_email_key ON app.items (email);
CREATE INDEX items_tags_idx ON app.items USING gin (tags);
CREATE INDEX items_embedding_idx ON app.items USING hnsw (embedding vector_cosine_ops) WITH (m = 8, ef_construction = 32);
COMMENT ON INDEX app.items_score_idx IS 'for the leaderboard';
ALTER TABLE app.items CLUSTER ON items_score_idx;
CREATE INDEX notes_body_idx ON app.notes (body);`;

const DEFERRED = ["items_active_idx", "items_embedding_idx", "items_lower_email_idx", "items_score_idx", "items_tags_idx", "notes_body_idx"];
const KEPT = ["items_email_key", "items_pkey", "notes_pkey"];

const pair = useTestPair("deferred indexes", async (db) => {
  await db.source.query(`${ITEMS("public")} ${NOTES("public.notes")} ${NOTES("public.legacy_notes")}`);
  await db.target.query(`CREATE SCHEMA app; ${ITEMS("app")}
    CREATE TABLE app.notes (origin text NOT NULL, id int NOT NULL, body text NOT NULL, PRIMARY KEY (origin, id)); ${TARGET_INDEXES}`);
  await db.source.query(`
    INSERT INTO items SELECT g, 'user' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'active' ELSE 'idle' END, (g * 7919) % 1000,
      ARRAY['t' || g % 5, 't' || g % 7], (SELECT array_agg(sin(g * i)) FROM generate_series(1, ${DIMS}) AS i)::vector(${DIMS})
    FROM generate_series(1, ${ROWS}) AS g;
    INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 2000) AS g;
    INSERT INTO legacy_notes SELECT g, 'legacy ' || g FROM generate_series(1, 1500) AS g;`);
});

/** Two sources merged into app.notes (told apart by `origin`), items as is. */
function config(slot: string): Config {
  return parseConfig(
    `source:\n  url: \${SOURCE_URL}\n  slot: ${slot}\n  publication: ${slot}\ntarget:\n  url: \${TARGET_URL}\n` +
      `snapshot:\n  workers: 2\n  chunkRows: 1000\n` +
      `apply:\n  retry: { maxAttempts: 50, initialDelayMs: 100, maxDelayMs: 1000 }\n` +
      `control:\n  listen: 127.0.0.1:0\nlog:\n  level: info\n  format: json\n` +
      `tables:\n  - { from: public.items, to: app.items }\n` +
      `  - { from: public.notes, to: app.notes, columns: { origin: { value: new } } }\n` +
      `  - { from: public.legacy_notes, to: app.notes, columns: { origin: { value: old } } }\n`,
    "indexes.yaml",
    { SOURCE_URL: pair.db.sourceUrl, TARGET_URL: pair.db.targetUrl },
  );
}

const PAIRS: TablePair[] = [
  { source: "public.items", target: "app.items" },
  {
    source: "(SELECT 'new'::text AS origin, id, body FROM public.notes UNION ALL SELECT 'old', id, body FROM public.legacy_notes)",
    target: "app.notes",
  },
];

/** Each index of schema `app` with all a rebuild must give back, and its oid (a rebuilt index has a new one). */
async function indexes(): Promise<{ name: string; described: string; oid: string }[]> {
  const { rows } = await pair.db.target.query<{ name: string; described: string; oid: string }>(`
    SELECT c.relname AS name, i.indexrelid::text AS oid,
           concat_ws(' | ', pg_get_indexdef(i.indexrelid), 'valid=' || i.indisvalid, 'clustered=' || i.indisclustered,
                     'comment=' || obj_description(i.indexrelid, 'pg_class'),
                     'stats=' || (SELECT string_agg(a.attnum || ':' || a.attstattarget, ',') FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0),
                     'tablespace=' || c.reltablespace) AS described
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
    WHERE t.relnamespace = 'app'::regnamespace ORDER BY c.relname`);
  return rows;
}

async function recorded(): Promise<string[]> {
  const { rows } = await pair.db.target.query<{ index_name: string }>("SELECT index_name FROM _pgferry.deferred_indexes ORDER BY index_name").catch(() => ({ rows: [] }));
  return rows.map((r) => r.index_name);
}

function logged(logs: readonly string[], message: string): { index?: string; table?: string; seconds?: number; at: number }[] {
  return logs.flatMap((line, at) => {
    const entry = JSON.parse(line) as { msg?: string; index?: string; table?: string; seconds?: number };
    return entry.msg === message ? [{ ...entry, at }] : [];
  });
}

const converged = () =>
  waitFor(() => compareTables(pair.db.source, pair.db.target, PAIRS), {
    description: "target == source, row by row",
    until: (difference) => difference === null,
    timeoutMs: 60_000,
    intervalMs: 250,
  });

describe("secondary indexes built after the copy", () => {
  it("drops the deferrable indexes before the copy and gives them back exactly, keeping unique ones and the keys", async () => {
    const before = await indexes();
    expect(before.map((i) => i.name)).toEqual([...DEFERRED, ...KEPT].sort());
    const described = (name: string) => before.find((i) => i.name === name)?.described ?? "";
    expect(described("items_score_idx")).toMatch(/clustered=true \| comment=for the leaderboard/);
    expect(described("items_lower_email_idx")).toMatch(/stats=1:300/);
    expect(described("items_embedding_idx")).toMatch(/USING hnsw \(embedding vector_cosine_ops\) WITH \(m='8', ef_construction='32'\)/);
    const running = pair.start(config(`pgferry_${pair.db.name}`));
    await streaming(running);
    expect(await converged()).toBeNull();

    const after = await indexes();
    expect(after.map((i) => i.described)).toEqual(before.map((i) => i.described));
    const oid = (list: typeof before, name: string) => list.find((i) => i.name === name)?.oid;
    // Kept: the same index objects. Deferred: new ones, each dropped once and rebuilt once.
    for (const name of KEPT) expect(oid(after, name)).toBe(oid(before, name));
    for (const name of DEFERRED) expect(oid(after, name)).not.toBe(oid(before, name));
    const dropped = logged(running.logs, "index dropped until the table is copied");
    const rebuilt = logged(running.logs, "index rebuilt");
    expect(dropped.map((d) => d.index).sort()).toEqual(DEFERRED);
    expect(rebuilt.map((d) => d.index).sort()).toEqual(DEFERRED);
    expect(rebuilt.every((r) => typeof r.seconds === "number")).toBe(true);
    expect(await recorded()).toEqual([]);

    // The merged table's index comes back once both of its sources are copied, not after the first.
    const copied = logged(running.logs, "table copied");
    const notesRebuilt = rebuilt.find((r) => r.index === "notes_body_idx")!.at;
    for (const source of ["public.notes", "public.legacy_notes"]) expect(copied.find((c) => c.table === source)!.at).toBeLessThan(notesRebuilt);

    // The stream's upserts go through the unique index as before.
    await pair.db.source.query(`INSERT INTO items SELECT ${ROWS + 1}, 'late@example.com', 'active', 1, '{}', array_fill(0.5, ARRAY[${DIMS}])::vector(${DIMS});
      UPDATE items SET email = 'moved@example.com', status = 'active' WHERE id = 2; UPDATE notes SET body = 'edited' WHERE id = 7`);
    expect(await converged()).toBeNull();
    const { rows } = await pair.db.target.query<{ id: string }>("SELECT id::text FROM app.items WHERE email = 'late@example.com'");
    expect(rows).toEqual([{ id: String(ROWS + 1) }]);
  });

  it("rebuilds on start-up the recorded indexes of tables already copied (a stop between the copy and the build)", async () => {
    await pair.stopAll();
    const before = await indexes();
    // What a run killed after finishing app.items' copy but before building its indexes leaves behind.
    const client = await pair.db.target.connect();
    try {
      await client.query("BEGIN");
      await client.query("SELECT set_config('search_path', '', true)");
      await client.query(`
        INSERT INTO _pgferry.deferred_indexes (table_schema, index_name, table_name, pipeline, definition, method)
        SELECT 'app', c.relname, 'items', $1, pg_get_indexdef(c.oid), am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam
        WHERE c.oid IN ('app.items_active_idx'::regclass, 'app.items_embedding_idx'::regclass)`, [`pgferry_${pair.db.name}`]);
      await client.query("DROP INDEX app.items_active_idx, app.items_embedding_idx");
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    expect(await recorded()).toEqual(["items_active_idx", "items_embedding_idx"]);

    const running = pair.start(config(`pgferry_${pair.db.name}`));
    await streaming(running);
    expect(logged(running.logs, "index rebuilt").map((r) => r.index).sort()).toEqual(["items_active_idx", "items_embedding_idx"]);
    // Nothing copied again, nothing else dropped.
    expect(logged(running.logs, "index dropped until the table is copied")).toEqual([]);
    expect(logged(running.logs, "table copied")).toEqual([]);
    expect(await recorded()).toEqual([]);
    expect((await indexes()).map((i) => i.described)).toEqual(before.map((i) => i.described));
  });

  it("keeps the indexes of a table pgferry's role does not own, and says why", async () => {
    const role = `${pair.db.name}_writer`;
    await pair.db.target.query(`CREATE ROLE ${role} LOGIN PASSWORD 'writer-pw'; GRANT USAGE ON SCHEMA app TO ${role}; GRANT ALL ON app.items TO ${role}`);
    const url = new URL(pair.db.targetUrl);
    url.username = role;
    url.password = "writer-pw";
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    const { log, logs: lines } = capturingLogger();
    try {
      const deferral = new IndexDeferral({
        target: endpoint("target", url.toString()), pool: pair.db.target, store: new DeferredIndexStore({ schema: "_pgferry", pipeline: "unused" }),
        buildMemory: 64 * 1024 * 1024, concurrency: 1, log,
      });
      const before = await indexes();
      expect(await deferral.defer(client, { id: "app.items", schema: "app", name: "items", columns: [], keyIndexes: [] })).toBe(0);
      expect((await indexes()).map((i) => i.oid)).toEqual(before.map((i) => i.oid));
      expect(await recorded()).toEqual([]);
      const warning = lines.map((l) => JSON.parse(l) as { msg: string; table?: string; hint?: string }).find((l) => l.msg.startsWith("secondary indexes kept during the copy"));
      expect(warning?.table).toBe("app.items");
      expect(warning?.hint).toMatch(/GRANT postgres TO/);
    } finally {
      await client.end();
      await pair.db.target.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it("builds at most `concurrency` at once; a stop cancels the running build and refuses the waiting one, and both records stay", async () => {
    await pair.db.target.query("CREATE TABLE app.pooled (id int PRIMARY KEY, a int, b int); CREATE INDEX pooled_a_idx ON app.pooled (a); CREATE INDEX pooled_b_idx ON app.pooled (b)");
    const table = { id: "app.pooled", schema: "app", name: "pooled", columns: [], keyIndexes: [] };
    const store = new DeferredIndexStore({ schema: "_pgferry", pipeline: "pooled" });
    const options = { target: endpoint("target", pair.db.targetUrl), pool: pair.db.target, store, buildMemory: 64 * 1024 * 1024, log: capturingLogger().log };
    const owner = new pg.Client({ connectionString: pair.db.targetUrl });
    const writer = new pg.Client({ connectionString: pair.db.targetUrl });
    await Promise.all([owner.connect(), writer.connect()]);
    const pooled = async () => (await recorded()).filter((name) => name.startsWith("pooled_"));
    const builds = async () =>
      (await pair.db.target.query<{ waiting: boolean }>("SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE application_name = 'pgferry-index-build' AND state = 'active'")).rows;
    try {
      const first = new IndexDeferral({ ...options, concurrency: 1 });
      expect(await first.defer(owner, table)).toBe(2);
      expect(await pooled()).toEqual(["pooled_a_idx", "pooled_b_idx"]);
      // A writer's open transaction holds ROW EXCLUSIVE: a CREATE INDEX waits for it.
      await writer.query("BEGIN; LOCK TABLE app.pooled IN ROW EXCLUSIVE MODE");
      const building = first.rebuild(new Set(["app.pooled"]));
      building.catch(() => undefined);
      await waitFor(builds, { description: "one build waiting on the writer's lock", until: (rows) => rows.length === 1 && rows[0]!.waiting });
      expect(await builds()).toHaveLength(1);
      await first.stop();
      await expect(building).rejects.toThrow();
      expect(await pooled()).toEqual(["pooled_a_idx", "pooled_b_idx"]);
      await writer.query("COMMIT");

      await new IndexDeferral({ ...options, concurrency: 2 }).rebuild(new Set(["app.pooled"]));
      expect(await pooled()).toEqual([]);
      const { rows } = await pair.db.target.query<{ name: string }>("SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'app' AND tablename = 'pooled' ORDER BY 1");
      expect(rows.map((r) => r.name)).toEqual(["pooled_a_idx", "pooled_b_idx", "pooled_pkey"]);
    } finally {
      await writer.query("ROLLBACK").catch(() => undefined);
      await Promise.all([owner.end(), writer.end()]);
      await pair.db.target.query("DROP TABLE app.pooled");
    }
  });
});
