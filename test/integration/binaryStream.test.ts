/**
 * apply.format (pipeline/streamFormat.ts): the binary stream and the text stream land identical rows.
 * One source table of many types feeds two pipelines at once, one with `binary` and one with `text`,
 * each into its own target schema, through a mapping with a filter and a derived column (columns
 * pgferry reads, printed from binary) beside copied ones (passed through in binary). Inserts,
 * updates (with an unchanged TOASTed value), key changes, deletes, several changes of a row in one
 * transaction and a resync (its rows arrive as text, beside streamed binary ones) must leave both
 * targets equal to what the source's rows should become. Then: `binary` is refused where pgferry
 * reads a column it cannot print, and `auto` streams those in text.
 */
import pg from "pg";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../src/config/index.js";
import { PreflightError } from "../../src/pipeline/preflight.js";
import { ResyncEngine } from "../../src/pipeline/resync/resyncEngine.js";
import { postgresStores } from "../../src/state/postgresStores.js";
import { compareTables } from "../harness/compare.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { startPipeline, streaming, type RunningPipeline } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";

let db: TestDatabases;
const running: RunningPipeline[] = [];
/** Sessions that print every value the same way on both sides. */
let pinned: { source: pg.Pool; target: pg.Pool };
const PINS = "-c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 -c TimeZone=UTC -c bytea_output=hex";

const slot = (name: string) => `pgferry_${db.name}_${name}`;

function config(name: string, format: string, tables: string): Config {
  return parseConfig(
    `source:\n  url: \${SOURCE_URL}\n  slot: ${slot(name)}\n  publication: ${slot(name)}\ntarget:\n  url: \${TARGET_URL}\n  stateSchema: state_${name}\n` +
      `apply:\n  format: ${format}\n  onError: stop\nlog:\n  level: debug\n  format: json\ntables:\n${tables}`,
    "binary.yaml",
    { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl },
  );
}

const mixedTables = (schema: string) =>
  `  - from: public.mixed\n    to: ${schema}.mixed\n    where: "id % 10 <> 3 AND coalesce(n, 0) >= -500"\n    columns:\n      label: { sql: "upper(doc->>'k') || array_length(tags, 1) || ' ' || coalesce(f::text, '-')" }\n`;

/** What the source's rows should become on each target: the filter and the derived column, computed by the source. */
const expected = `(SELECT id, v, doc, n, f, iv, tags, big, at, e, b, u, upper(doc->>'k') || array_length(tags, 1) || ' ' || coalesce(f::text, '-') AS label
  FROM public.mixed WHERE id % 10 <> 3 AND coalesce(n, 0) >= -500)`;
const COLUMNS = "id, v, doc, n, f, iv, tags, big, at, e, b, u, label";

const converged = () =>
  waitFor(
    async () =>
      (await compareTables(pinned.source, pinned.target, [{ source: expected, target: `(SELECT ${COLUMNS} FROM app_bin.mixed)`, orderBy: "t.id" }])) ??
      (await compareTables(pinned.source, pinned.target, [{ source: expected, target: `(SELECT ${COLUMNS} FROM app_txt.mixed)`, orderBy: "t.id" }])),
    { description: "both targets == the source's rows, mapped", until: (d) => d === null, timeoutMs: 90_000, intervalMs: 250 },
  );

/** The START_REPLICATION command each walsender of this file's slots runs. */
async function startCommands(): Promise<Map<string, string>> {
  const { rows } = await db.source.query<{ slot: string; query: string }>(
    `SELECT s.slot_name AS slot, a.query FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name LIKE $1`,
    [`pgferry_${db.name}_%`],
  );
  return new Map(rows.map((r) => [r.slot, r.query]));
}

beforeAll(async () => {
  db = await createTestDatabases("binary_stream");
  pinned = {
    source: new pg.Pool({ connectionString: db.sourceUrl, options: PINS, max: 2 }),
    target: new pg.Pool({ connectionString: db.targetUrl, options: PINS, max: 2 }),
  };
  for (const pool of [db.source, db.target]) await pool.query("CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')");
  const columns = `id bigint PRIMARY KEY, v vector(16), doc jsonb, n numeric(20,5), f float8, iv interval, tags text[], big text,
    at timestamptz, e mood, b bytea, u uuid`;
  await db.source.query(`CREATE TABLE public.mixed (${columns}); ALTER TABLE public.mixed ALTER COLUMN big SET STORAGE EXTERNAL`);
  for (const schema of ["app_bin", "app_txt"]) {
    await db.target.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.mixed (${columns}, label text)`);
  }
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await Promise.all([pinned?.source.end(), pinned?.target.end()]);
  await db?.drop();
});

/** Rows `from..to`, every column's value chosen by the id and `shift`, nulls and awkward values among them. */
const rowsSql = (from: number, to: number, shift: number) => `
  SELECT g,
    CASE WHEN (g + ${shift}) % 9 = 0 THEN NULL ELSE (SELECT array_agg(((g * 31 + i * ${shift + 7}) % 1000) / 7.0 - 50)::vector(16) FROM generate_series(1, 16) i) END,
    CASE WHEN (g + ${shift}) % 8 = 0 THEN NULL ELSE jsonb_build_object('k', 'key ' || (g % 5), 'n', g + ${shift}, 'deep', jsonb_build_array(1.50, 'x y', NULL)) END,
    (ARRAY[NULL, 0, -0.00001, 123456789012345.12345, -499.5, 'NaN', -600])[1 + (g + ${shift}) % 7]::numeric(20,5),
    (ARRAY[NULL, 0.1, -0.0, 5e-324, 1.7976931348623157e308, 'NaN', '-Infinity'])[1 + (g + ${shift}) % 7]::float8,
    (ARRAY[NULL, '1 mon -1 days +00:00:00.000001', '-178956970 years -8 mons', '0'])[1 + (g + ${shift}) % 4]::interval,
    (ARRAY[NULL, '{}', '{a,"",NULL,"x y","q\\"u"}', '[0:1]={s,t}'])[1 + (g + ${shift}) % 4]::text[],
    CASE WHEN g % 4 = 0 THEN repeat(md5(g::text), 300) ELSE 'small ' || g END,
    (ARRAY[NULL, 'infinity', '2000-02-29 12:34:56.789012+05:30', '0044-03-15 00:00:00+00 BC'])[1 + (g + ${shift}) % 4]::timestamptz,
    (ARRAY[NULL, 'sad', 'happy'])[1 + (g + ${shift}) % 3]::mood,
    CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text || ${shift}), 'hex') || '\\x00ff1f1e'::bytea END,
    CASE WHEN g % 6 = 0 THEN NULL ELSE md5(g::text || 'u' || ${shift})::uuid END
  FROM generate_series(${from}, ${to}) g`;

describe("apply.format", () => {
  it("binary and text streams land the same rows: filter, derived column, TOAST, key changes, a resync", async () => {
    await db.source.query(`INSERT INTO public.mixed ${rowsSql(1, 60, 0)}`);
    const resyncs = new ResyncEngine({
      store: postgresStores({ pool: db.target, schema: "state_bin", pipeline: slot("bin") }).resyncs,
      log: pino({ level: "silent" }),
      chunkRows: 7,
    });
    running.push(startPipeline(config("bin", "binary", mixedTables("app_bin")), { resyncs }));
    running.push(startPipeline(config("txt", "text", mixedTables("app_txt"))));
    await Promise.all(running.map((r) => streaming(r)));
    const commands = await startCommands();
    expect(commands.get(slot("bin"))).toContain("binary 'true'");
    expect(commands.get(slot("txt"))).not.toContain("binary 'true'");
    expect(await converged()).toBeNull();

    await db.source.query(`INSERT INTO public.mixed ${rowsSql(61, 120, 3)}`);
    // Every column but the TOASTed one: `big` arrives unchanged ('u') and must be kept.
    await db.source.query(`UPDATE public.mixed AS m SET (v, doc, n, f, iv, tags, at, e, b, u) = (SELECT r.v, r.doc, r.n, r.f, r.iv, r.tags, r.at, r.e, r.b, r.u
      FROM (${rowsSql(1, 120, 5)}) AS r(id, v, doc, n, f, iv, tags, big, at, e, b, u) WHERE r.id = m.id) WHERE m.id % 3 = 0`);
    await db.source.query("UPDATE public.mixed SET id = id + 1000 WHERE id % 7 = 1");
    await db.source.query("DELETE FROM public.mixed WHERE id % 5 = 2");
    // Moves rows into and out of the filter (n below -500 leaves it).
    await db.source.query("UPDATE public.mixed SET n = CASE WHEN n < -500 THEN 1 ELSE -600 END WHERE id % 11 = 4");
    await db.source.query(`BEGIN; UPDATE public.mixed SET doc = jsonb_set(coalesce(doc, '{}'), '{k}', '"again"') WHERE id BETWEEN 10 AND 30;
      UPDATE public.mixed SET tags = ARRAY['after', NULL], v = NULL WHERE id BETWEEN 20 AND 40; COMMIT`);
    expect(await converged()).toBeNull();

    // A resync re-reads the rows as text while changes keep streaming in binary.
    await db.target.query("UPDATE app_bin.mixed SET doc = '{\"drifted\": true}', v = NULL WHERE id % 4 = 0");
    const { id } = await resyncs.start("public.mixed");
    await db.source.query(`INSERT INTO public.mixed ${rowsSql(200, 230, 7)}`);
    await waitFor(() => resyncs.get(id), { description: "resync done", until: (r) => r?.state === "done", timeoutMs: 60_000, intervalMs: 100 });
    await db.source.query("UPDATE public.mixed SET v = NULL, f = -f WHERE id BETWEEN 200 AND 210");
    expect(await converged()).toBeNull();
    const { rows } = await db.target.query<{ n: number }>("SELECT count(*)::int AS n FROM app_bin.mixed");
    expect(rows[0]!.n).toBeGreaterThan(60);
  });

  it("a keyless table (REPLICA IDENTITY FULL): rows found by their binary old values, duplicates included", async () => {
    await db.source.query("CREATE TABLE public.loose (v vector(4), b bytea, f float8, iv interval, note text); ALTER TABLE public.loose REPLICA IDENTITY FULL");
    for (const schema of ["app_bin", "app_txt"]) await db.target.query(`CREATE TABLE ${schema}.loose (v vector(4), b bytea, f float8, iv interval, note text)`);
    await db.source.query(`INSERT INTO public.loose SELECT CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY[g, -g, g / 3.0, 1e-3]::vector(4) END,
      CASE WHEN g % 4 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END, (ARRAY[0.1, -0.0, 'NaN', NULL, 5e-324])[1 + g % 5]::float8,
      (ARRAY['1 mon -1 days', NULL, '-00:00:00.000001'])[1 + g % 3]::interval, 'n' || (g % 7) FROM generate_series(1, 40) g`);
    await db.source.query("INSERT INTO public.loose SELECT * FROM public.loose WHERE note = 'n3'"); // duplicates
    const tables = (schema: string) => `  - { from: public.loose, to: ${schema}.loose }\n`;
    running.push(startPipeline(config("kbin", "binary", tables("app_bin"))));
    running.push(startPipeline(config("ktxt", "text", tables("app_txt"))));
    await Promise.all(running.map((r) => streaming(r)));
    await db.source.query("INSERT INTO public.loose SELECT v, b, f, iv, note || 'x' FROM public.loose WHERE note IN ('n1', 'n2')");
    await db.source.query("UPDATE public.loose SET f = -f, iv = iv * 2, v = NULL WHERE note = 'n1'");
    await db.source.query("UPDATE public.loose SET note = 'dup' WHERE ctid = (SELECT min(ctid) FROM public.loose WHERE note = 'n3')");
    await db.source.query("DELETE FROM public.loose WHERE note IN ('n4', 'n2x')");
    await db.source.query("DELETE FROM public.loose WHERE ctid = (SELECT max(ctid) FROM public.loose WHERE note = 'n3')");
    const ordered = (table: string) => `(SELECT v, b, f, iv, note FROM ${table})`;
    const same = await waitFor(
      async () =>
        (await compareTables(pinned.source, pinned.target, [{ source: ordered("public.loose"), target: ordered("app_bin.loose"), orderBy: "t::text" }])) ??
        (await compareTables(pinned.source, pinned.target, [{ source: ordered("public.loose"), target: ordered("app_txt.loose"), orderBy: "t::text" }])),
      { description: "both keyless targets == public.loose", until: (d) => d === null, timeoutMs: 60_000 },
    );
    expect(same).toBeNull();
    expect((await startCommands()).get(slot("kbin"))).toContain("binary 'true'");
  });

  it("binary is refused where pgferry reads a column it cannot print; auto streams that in text", async () => {
    await db.source.query("CREATE TABLE public.spans (k interval PRIMARY KEY, w inet[], v vector(3))");
    await db.target.query("CREATE SCHEMA app_s; CREATE TABLE app_s.spans (k interval PRIMARY KEY, w inet[], v vector(3))");
    await db.source.query("INSERT INTO public.spans VALUES ('1 day', '{10.0.0.1,::1/128}', '[1,2,3]'), ('-1 mon +00:00:00.000001', NULL, NULL)");
    const tables = "  - { from: public.spans, to: app_s.spans }\n";
    const refused = startPipeline(config("refused", "binary", tables));
    await refused.done.catch(() => undefined);
    expect(refused.failure).toBeInstanceOf(PreflightError);
    expect((refused.failure as PreflightError).problems).toEqual([
      "apply.format is binary, but pgferry reads these columns (keys, filters, SQL inputs, hooks, arrays) and cannot print their type from binary: " +
        "public.spans.k (interval), public.spans.w (inet[]); use apply.format: auto (a text stream here) or text",
    ]);

    const auto = startPipeline(config("auto", "auto", tables));
    running.push(auto);
    await streaming(auto);
    expect((await startCommands()).get(slot("auto"))).not.toContain("binary 'true'");
    // The operator is told why the stream is text.
    expect(auto.logs.join("\n")).toContain(
      "stream: text values (apply.format: auto; pgferry reads public.spans.k (interval), public.spans.w (inet[]), and cannot print their type from binary)",
    );
    await db.source.query("INSERT INTO public.spans VALUES ('2 years', '{192.168.0.0/16}', '[0.1,0.2,0.3]'); UPDATE public.spans SET v = '[3,2,1]' WHERE k = '1 day'");
    const same = await waitFor(
      () => compareTables(pinned.source, pinned.target, [{ source: "public.spans", target: "app_s.spans", orderBy: "t.k" }]),
      { description: "app_s.spans == public.spans", until: (d) => d === null, timeoutMs: 60_000 },
    );
    expect(same).toBeNull();
  });
});
