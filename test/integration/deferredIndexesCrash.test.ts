/**
 * Deferred secondary indexes survive SIGKILL: the daemon (a child process) is killed while a table
 * with dropped indexes is half copied, then again while that table's index build waits, each time
 * restarted, under a write load on the source; it must end with exactly the indexes the target had
 * before (pg_get_indexdef), none recorded as dropped, and every row equal to the source's. Each kill
 * point is reached by holding a lock the pipeline waits on, never by sleeping.
 */
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareTables, type TablePair } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { configText, runCli, writeConfigFile, type ChildRun } from "../harness/processRunner.js";
import { waitFor } from "../harness/waitFor.js";

const DIMS = 32;
const ITEMS = 20_000;
const EVENTS = 30_000;

let db: TestDatabases;

const ddl = (schema: string) => `
CREATE TABLE ${schema}.items (id bigint PRIMARY KEY, email text NOT NULL, score int NOT NULL, status text NOT NULL, embedding vector(${DIMS}) NOT NULL);
CREATE TABLE ${schema}.events (id bigint PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL, payload jsonb NOT NULL);`;

beforeAll(async () => {
  db = await createTestDatabases("deferred index crash");
  await db.source.query(ddl("public"));
  await db.target.query(`CREATE SCHEMA app; ${ddl("app")}
    CREATE UNIQUE INDEX items_email_key ON app.items (email);
    CREATE INDEX items_score_idx ON app.items (score);
    CREATE INDEX items_live_idx ON app.items (id) WHERE status = 'live';
    CREATE INDEX items_embedding_idx ON app.items USING hnsw (embedding vector_l2_ops);
    CREATE INDEX events_kind_at_idx ON app.events (kind, at DESC);
    CREATE INDEX events_day_idx ON app.events (((payload ->> 'day')));`);
  await db.source.query(`
    INSERT INTO items SELECT g, 'u' || g || '@example.com', g % 997, CASE WHEN g % 4 = 0 THEN 'live' ELSE 'gone' END,
      (SELECT array_agg(cos(g * i)) FROM generate_series(1, ${DIMS}) AS i)::vector(${DIMS}) FROM generate_series(1, ${ITEMS}) AS g;
    INSERT INTO events SELECT g, 'k' || g % 9, '2026-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('day', g % 31, 'n', g)
    FROM generate_series(1, ${EVENTS}) AS g;
    ANALYZE items; ANALYZE events;`);
});
afterAll(async () => {
  for (const release of held.splice(0).reverse()) await release();
  await db?.drop();
});

const PAIRS: TablePair[] = [
  { source: "public.items", target: "app.items" },
  { source: "public.events", target: "app.events" },
];

async function indexDefinitions(): Promise<string[]> {
  const { rows } = await db.target.query<{ def: string }>(
    "SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE t.relnamespace = 'app'::regnamespace ORDER BY 1",
  );
  return rows.map((r) => r.def);
}

async function recorded(): Promise<string[]> {
  const { rows } = await db.target.query<{ index_name: string }>("SELECT index_name FROM _pgferry.deferred_indexes ORDER BY 1").catch(() => ({ rows: [] }));
  return rows.map((r) => r.index_name);
}

async function tableState(table: string): Promise<{ state: string; rows: number; startedAt: string | null } | undefined> {
  const { rows } = await db.target
    .query<{ state: string; rows_copied: string; started_at: string | null }>("SELECT state, rows_copied::text, started_at::text FROM _pgferry.tables WHERE source_table = $1", [table])
    .catch(() => ({ rows: [] }));
  return rows[0] && { state: rows[0].state, rows: Number(rows[0].rows_copied), startedAt: rows[0].started_at };
}

function logLines(run: ChildRun, message: string): { index?: string; table?: string }[] {
  return run.output.join("").split("\n").flatMap((line) => {
    try {
      const entry = JSON.parse(line) as { msg?: string; index?: string; table?: string };
      return entry.msg === message ? [entry] : [];
    } catch {
      return [];
    }
  });
}

/** Source writes until stopped: inserts, updates (the unique email too) and deletes on both tables. */
function writeLoad(source: pg.Pool, signal: AbortSignal): Promise<number> {
  return (async () => {
    let n = 0;
    while (!signal.aborted) {
      n += 1;
      const id = ITEMS + n;
      await source.query(`INSERT INTO items VALUES (${id}, 'new${n}@example.com', ${n % 997}, 'live', array_fill(${(n % 10) / 10}, ARRAY[${DIMS}])::vector(${DIMS}))`);
      await source.query(`UPDATE items SET email = 'moved' || id || '@example.com', score = score + 1 WHERE id = ${(n * 37) % ITEMS + 1}`);
      await source.query(`INSERT INTO events VALUES (${EVENTS + n}, 'late', now(), '{"day": 1}')`);
      if (n % 5 === 0) await source.query(`DELETE FROM events WHERE id = ${n}`);
    }
    return n;
  })();
}

/** What the test holds (child processes, locks), let go of after it, also when it fails. */
const held: (() => Promise<void>)[] = [];

/** Holds `mode` on a target table in an open transaction until released. */
async function holdLock(table: string, mode: string): Promise<() => Promise<void>> {
  const client = await db.target.connect();
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await client.query("ROLLBACK").catch(() => undefined);
    client.release();
  };
  held.push(release);
  await client.query("BEGIN");
  await client.query(`LOCK TABLE ${table} IN ${mode} MODE`);
  return release;
}

function start(file: string): ChildRun {
  const run = runCli(["run", "--config", file], { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
  held.push(async () => {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
    await run.exited;
  });
  return run;
}

/** A wait that, when it times out, shows what the daemon said last. */
function withOutput<T>(run: ChildRun, waiting: Promise<T>): Promise<T> {
  return waiting.catch((error: Error) => {
    throw new Error(`${error.message}\n--- daemon output ---\n${run.output.join("").slice(-4000)}`);
  });
}

/** Sessions of pgferry named `application` waiting for a lock on app.items. */
async function waitingOn(application: string): Promise<number> {
  const { rows } = await db.target.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE NOT l.granted AND l.relation = 'app.items'::regclass AND a.application_name = $1`,
    [application],
  );
  return rows[0]?.n ?? 0;
}

async function kill(run: ChildRun): Promise<void> {
  run.child.kill("SIGKILL");
  expect(await run.exited).toEqual({ code: null, signal: "SIGKILL" });
}

describe("deferred indexes and SIGKILL", () => {
  it("ends with the same indexes and rows after kills mid-copy and mid-build", async () => {
    const before = await indexDefinitions();
    expect(before).toHaveLength(8);
    const file = await writeConfigFile(configText([{ from: "public.items", to: "app.items" }, { from: "public.events", to: "app.events" }], { chunkRows: 2000 }));
    const controller = new AbortController();
    const load = writeLoad(db.source, controller.signal);
    try {
      // 1. Mid-copy: once the indexes are recorded as dropped, a SHARE lock on app.items stops its next
      // chunk's COPY; the kill lands, once a copy worker waits for it, while the table is being copied
      // without its indexes.
      const first = start(file);
      await withOutput(first, waitFor(recorded, { description: "indexes recorded as dropped", until: (r) => r.includes("items_embedding_idx"), timeoutMs: 60_000, intervalMs: 10 }));
      const releaseCopy = await holdLock("app.items", "SHARE");
      await withOutput(first, waitFor(() => waitingOn("pgferry-snapshot"), { description: "a copy into app.items waiting", until: (n) => n > 0, timeoutMs: 60_000, intervalMs: 20 }));
      const interrupted = await tableState("public.items");
      expect(interrupted?.state).toBe("copying");
      await kill(first);
      await releaseCopy();
      expect(await recorded()).toEqual(expect.arrayContaining(["items_embedding_idx", "items_live_idx", "items_score_idx"]));
      expect(await indexDefinitions()).not.toEqual(before);

      // 2. Mid-build: the restart copies app.items again (its definitions kept, nothing dropped twice);
      // a ROW EXCLUSIVE lock taken once rows of this copy are in (the first run's count stays until the
      // copy starts over) lets the copy finish but holds its index builds.
      const second = start(file);
      await withOutput(second, waitFor(() => tableState("public.items"), { description: "app.items copied again", until: (s) => s?.state === "copying" && s.startedAt !== interrupted?.startedAt && s.rows > 0, timeoutMs: 60_000, intervalMs: 10 }));
      const releaseBuild = await holdLock("app.items", "ROW EXCLUSIVE");
      await withOutput(second, waitFor(() => waitingOn("pgferry-index-build"), { description: "an index build of app.items waiting", until: (n) => n > 0, timeoutMs: 60_000, intervalMs: 20 }));
      expect((await tableState("public.items"))?.state).toBe("ready");
      await kill(second);
      await releaseBuild();
      expect(logLines(second, "index dropped until the table is copied")).toEqual([]);
      expect(await recorded()).toEqual(expect.arrayContaining(["items_embedding_idx"]));

      // 3. The last start builds what is recorded (the table is ready) and streams.
      const last = start(file);
      await withOutput(last, waitFor(async () => (await recorded()).length, { description: "every recorded index rebuilt", until: (n) => n === 0, timeoutMs: 120_000, intervalMs: 100 }));
      expect(logLines(last, "index rebuilt").map((l) => l.index)).toEqual(expect.arrayContaining(["items_embedding_idx"]));
      controller.abort();
      expect(await load).toBeGreaterThan(0);
      const difference = await waitFor(() => compareTables(db.source, db.target, PAIRS), {
        description: "target == source after the last restart",
        until: (d) => d === null,
        timeoutMs: 90_000,
        intervalMs: 250,
      }).catch((error: Error) => `${error.message}\n${last.output.join("").slice(-3000)}`);
      expect(difference).toBeNull();
      expect(await indexDefinitions()).toEqual(before);
      last.child.kill("SIGTERM");
      expect(await last.exited).toEqual({ code: 0, signal: null });
    } finally {
      controller.abort();
      await load.catch(() => undefined);
    }
  });
});
