/**
 * Byte-sized snapshot chunks (`snapshot.chunkBytes`): a wide table with few rows, its bytes in TOAST
 * and its heap a few pages, is cut into many ctid ranges (a page split by line pointer) that the
 * workers copy side by side, and every row still arrives exactly once: while the source is being
 * written, and when the copy stops half-way and a restart copies the table again.
 */
import { describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../src/config/index.js";
import { compareTables } from "../harness/compare.js";
import { useTestPair } from "../harness/testPair.js";
import { waitFor } from "../harness/waitFor.js";

/** Rows of about 16 kB stored out of line and uncompressed: the bytes are in TOAST, not in the heap. */
const ROWS = 240;
const BODY = "(SELECT string_agg(md5(g::text || ':' || i), '') FROM generate_series(1, 512) AS i)";

const ddl = (schema: string) => `
CREATE TABLE IF NOT EXISTS ${schema}.docs (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL);
ALTER TABLE ${schema}.docs ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS ${schema}.notes (n int NOT NULL, body text NOT NULL);
ALTER TABLE ${schema}.notes ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE ${schema}.notes REPLICA IDENTITY FULL;`;

const pair = useTestPair("snapshot chunks", async (db) => {
  await db.source.query(ddl("public"));
  await db.target.query(`CREATE SCHEMA app; ${ddl("app")}`);
  await db.source.query(`INSERT INTO docs SELECT g, 'doc ' || g, ${BODY} FROM generate_series(1, ${ROWS}) AS g`);
  // Keyless, with twin rows: a row copied twice or not at all shows in the row-by-row comparison.
  await db.source.query(`INSERT INTO notes SELECT g / 2, ${BODY} FROM generate_series(1, ${ROWS}) AS g`);
});

const TABLES = ["docs", "notes"];

function config(slot: string, onError: "retry" | "stop" = "retry"): Config {
  return parseConfig(
    `source:\n  url: \${SOURCE_URL}\n  slot: ${slot}\n  publication: ${slot}\ntarget:\n  url: \${TARGET_URL}\n` +
      `snapshot:\n  workers: 2\n  chunkRows: 1000000\n  chunkBytes: 256KiB\n` +
      `apply:\n  onError: ${onError}\n  retry: { maxAttempts: 50, initialDelayMs: 100, maxDelayMs: 1000 }\n` +
      `control:\n  listen: 127.0.0.1:0\nlog:\n  level: info\n  format: json\n` +
      `tables:\n${TABLES.map((t) => `  - { from: public.${t}, to: app.${t} }`).join("\n")}\n`,
    "chunks.yaml",
    { SOURCE_URL: pair.db.sourceUrl, TARGET_URL: pair.db.targetUrl },
  );
}

const slot = (scenario: string) => `pgferry_${pair.db.name}_${scenario}`;

const converged = () =>
  waitFor(() => compareTables(pair.db.source, pair.db.target, TABLES.map((t) => ({ source: `public.${t}`, target: `app.${t}` }))), {
    description: "target == source, row by row",
    until: (difference) => difference === null,
    timeoutMs: 60_000,
    intervalMs: 250,
  });

/** The chunk count each "copying" log line gave, per source table. */
function chunksLogged(logs: readonly string[]): Map<string, number[]> {
  const counts = new Map<string, number[]>();
  for (const line of logs) {
    const entry = JSON.parse(line) as { msg?: string; table?: string; chunks?: number };
    if (entry.msg !== "copying" || entry.table === undefined || entry.chunks === undefined) continue;
    counts.set(entry.table, [...(counts.get(entry.table) ?? []), entry.chunks]);
  }
  return counts;
}

async function tableStates(pipeline: string): Promise<Record<string, { state: string; rows: number }>> {
  const { rows } = await pair.db.target.query<{ source_table: string; state: string; rows_copied: string }>(
    "SELECT source_table, state, rows_copied::text FROM _pgferry.tables WHERE pipeline = $1",
    [pipeline],
  );
  return Object.fromEntries(rows.map((r) => [r.source_table, { state: r.state, rows: Number(r.rows_copied) }]));
}

describe("snapshot chunks sized by bytes", () => {
  it("cuts a wide table with few rows into many chunks and copies every row once while the source is written", async () => {
    const { rows: size } = await pair.db.source.query<{ pages: string; bytes: string }>(
      "SELECT (pg_relation_size('docs') / 8192)::text AS pages, pg_table_size('docs')::text AS bytes",
    );
    // The premise: a few heap pages, megabytes in TOAST.
    expect(Number(size[0]!.pages)).toBeLessThanOrEqual(4);
    expect(Number(size[0]!.bytes)).toBeGreaterThan(3 * 1024 * 1024);

    const running = pair.start(config(slot("live")));
    // Writes until the copy is done: new row versions land in the same pages, past the chunks' bounds.
    let writes = 0;
    for (let i = 1; i <= 400 && (i <= 20 || !running.phases.includes("streaming")); i += 1) {
      await pair.db.source.query(`UPDATE docs SET title = title || ' v${i}' WHERE id = ${((i * 37) % ROWS) + 1}`);
      await pair.db.source.query(`INSERT INTO notes SELECT ${1000 + i}, ${BODY.replace("g::text", `'${i}'`)}`);
      if (i % 10 === 0) await pair.db.source.query(`DELETE FROM docs WHERE id = ${i}`);
      writes = i;
    }
    expect(writes).toBeGreaterThanOrEqual(20);
    expect(await converged()).toBeNull();

    const chunks = chunksLogged(running.logs);
    expect(chunks.get("public.docs")?.[0]).toBeGreaterThanOrEqual(8);
    expect(chunks.get("public.notes")?.[0]).toBeGreaterThanOrEqual(8);
    const states = await tableStates(slot("live"));
    expect(states["public.docs"]?.state).toBe("ready");
    expect(states["public.notes"]?.state).toBe("ready");
    await pair.stopAll();
    await waitFor(
      async () => (await pair.db.source.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot("live")])).rowCount,
      { description: "the first pipeline's slot released and dropped", until: (n) => n === 1 },
    );
  });

  it("copies a table stopped half-way again after a restart, each row once", async () => {
    // The target refuses the notes table's last row (the last chunk in ctid order), so the first run
    // commits the chunks before it and stops.
    const { rows: last } = await pair.db.source.query<{ n: number }>("SELECT n FROM notes ORDER BY ctid DESC LIMIT 1");
    await pair.db.target.query(`ALTER TABLE app.notes ADD CONSTRAINT refuse_last CHECK (n <> ${last[0]!.n}) NOT VALID`);
    const first = pair.start(config(slot("restart"), "stop"));
    await expect(first.done).rejects.toThrow(/violates check constraint "refuse_last"/);
    const stopped = await tableStates(slot("restart"));
    expect(stopped["public.notes"]?.state).toBe("errored");
    const { rows: partial } = await pair.db.target.query<{ n: string }>("SELECT count(*)::text AS n FROM app.notes");
    const { rows: total } = await pair.db.source.query<{ n: string }>("SELECT count(*)::text AS n FROM notes");
    // Some chunks are in, not all: the restart must clear them and copy the table once more.
    expect(Number(partial[0]!.n)).toBeGreaterThan(0);
    expect(Number(partial[0]!.n)).toBeLessThan(Number(total[0]!.n));
    expect(stopped["public.notes"]?.rows).toBe(Number(partial[0]!.n));

    await pair.db.target.query("ALTER TABLE app.notes DROP CONSTRAINT refuse_last");
    const second = pair.start(config(slot("restart")));
    await waitFor(() => tableStates(slot("restart")), {
      description: "every table ready after the restart",
      until: (states) => Object.values(states).length === TABLES.length && Object.values(states).every((s) => s.state === "ready"),
      timeoutMs: 60_000,
    });
    expect(await converged()).toBeNull();
    // The restart copied what was not ready, again in byte-sized chunks, and nothing else.
    const copiedAgain = chunksLogged(second.logs);
    expect(copiedAgain.get("public.notes")?.[0]).toBeGreaterThanOrEqual(8);
    expect(copiedAgain.has("public.docs")).toBe(stopped["public.docs"]?.state !== "ready");
    const states = await tableStates(slot("restart"));
    expect(states["public.notes"]?.rows).toBe(Number(total[0]!.n));
  });
});
