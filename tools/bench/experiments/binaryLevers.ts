/**
 * Issue 15 experiment: what the two binary levers would save, in CPU seconds (the machine is
 * shared, so CPU time, not wall time, is the figure).
 *
 * 1. Walsender: the same backlog (`bench_tx` transactions) streamed from pgoutput with
 *    `proto_version '1'`, text vs `binary 'true'`, each run from its own slot created before the
 *    backlog. Measured: the walsender's CPU from connect to the backlog's last commit.
 * 2. Target backend: the same rows applied (a) as pgferry does today (src/apply/statements.ts:
 *    one text parameter per column, string_to_array + unnest + casts, INSERT ... ON CONFLICT), in
 *    batches of the size pgferry's 8 MiB / 10k-row limits give for this workload, and (b) as binary
 *    COPY tuples (what the source's send functions produce, from `COPY (SELECT ...) TO STDOUT
 *    (FORMAT binary)`) into a temporary staging table (ON COMMIT DELETE ROWS), then the same
 *    INSERT ... ON CONFLICT from it. Each mode of each run on a fresh clone of the target database.
 *
 * Run: node_modules/.bin/vite-node tools/bench/experiments/binaryLevers.ts -- [--scale 1] [--runs 3] [--part apply|walsender|both]
 */
import { parseArgs } from "node:util";
import type pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { upsertText, upsertStatement, insertRowsStatement, type Cell } from "../../../src/apply/statements.js";
import type { TargetTable } from "../../../src/plan/targetTable.js";
import { formatLsn, parseLsn } from "../../../src/source/lsn.js";
import { openClient, prepareApplySession } from "../../../src/sql/session.js";
import { Cleanup } from "../cleanup.js";
import { createTemplate, startPair, TEMPLATE_DB } from "../clusters.js";
import { checkpoint, createDatabase, quoteIdent, withClient } from "../db.js";
import { FIXTURE_TABLES, fixtureSize, generateFixture, type FixtureSize } from "../fixture.js";
import { cpuSeconds } from "../processCpu.js";
import { median } from "../stats.js";
import { CHANGES_PER_TRANSACTION, NEW_IDS, runBacklog } from "../workload.js";

const { values: args } = parseArgs({
  options: { scale: { type: "string", default: "1" }, runs: { type: "string", default: "3" }, part: { type: "string", default: "both" } },
});
const scale = Number(args.scale);
const runs = Number(args.runs);

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

interface Figure {
  label: string;
  values: number[];
  unit: string;
}

function describe({ label, values, unit }: Figure): string {
  return `${label}: ${median(values).toFixed(3)} ${unit} (min ${Math.min(...values).toFixed(3)}, max ${Math.max(...values).toFixed(3)}, n ${values.length})`;
}

// ---------------------------------------------------------------- 1. walsender, text vs binary

interface Drain {
  cpu: number;
  /** pgoutput payload bytes received. */
  bytes: number;
}

/** Streams `slot` until the first commit after `afterLsn`; the walsender's CPU seconds meanwhile. */
async function drainSlot(url: string, slot: string, binary: boolean, afterLsn: bigint): Promise<Drain> {
  const client = await openClient(url, { applicationName: "binexp-walsender", replication: true });
  const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
  const before = cpuSeconds(pid)!;
  const raw = (client as unknown as { connection: { on(e: "copyData", l: (m: { chunk: Buffer }) => void): void; stream: { destroy(): void }; sendCopyFromChunk(b: Buffer): void } }).connection;
  let bytes = 0;
  let result: Drain | undefined;
  raw.on("copyData", ({ chunk }) => {
    if (result !== undefined) return;
    if (chunk[0] === 0x77 /* XLogData */) {
      bytes += chunk.length - 25;
      // A Commit message's WAL position is its transaction's end LSN.
      if (chunk[25] === 0x43 /* 'C' */ && chunk.readBigUInt64BE(1) > afterLsn) {
        result = { cpu: cpuSeconds(pid)! - before, bytes };
        raw.stream.destroy();
      }
    } else if (chunk[0] === 0x6b /* keepalive */ && chunk[17] === 1) {
      const reply = Buffer.alloc(34);
      reply[0] = 0x72;
      raw.sendCopyFromChunk(reply); // positions 0: nothing confirmed, the slot stays where it is
    }
  });
  const options = [`proto_version '1'`, `publication_names 'binexp'`, ...(binary ? [`binary 'true'`] : [])];
  await client.query(`START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL 0/0 (${options.join(", ")})`).catch(() => undefined);
  // The socket is gone (destroyed above); end() only settles the client, but must not hang on it.
  await Promise.race([client.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000))]);
  if (result === undefined) throw new Error(`slot ${slot}: stream ended before the backlog's end`);
  return result;
}

async function walsenderExperiment(sourceUrl: string, size: FixtureSize): Promise<Figure[]> {
  const transactions = Math.round(60_000 * scale);
  const slots = Array.from({ length: runs }, (_, r) => [`binexp_text_${r}`, `binexp_binary_${r}`]).flat();
  await withClient(sourceUrl, async (c) => {
    await c.query(`CREATE PUBLICATION binexp FOR TABLE ${FIXTURE_TABLES.join(", ")} WITH (publish_via_partition_root = true)`);
    for (const slot of slots) await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
  });
  log(`walsender: backlog of ${transactions} transactions (${transactions * CHANGES_PER_TRANSACTION} changes), ${size.memoryEntries} memory entries`);
  await runBacklog(sourceUrl, 0, transactions);
  // Every backlog commit ends at or before this position; the marker transaction's commit after it.
  const afterLsn = await withClient(sourceUrl, async (c) => {
    const lsn = parseLsn((await c.query<{ lsn: string }>("SELECT pg_current_wal_insert_lsn()::text AS lsn")).rows[0]!.lsn);
    await c.query("INSERT INTO bench_heartbeat VALUES (1, now())");
    return lsn;
  });
  log(`walsender: backlog ends before ${formatLsn(afterLsn)}`);
  const cpu = { text: [] as number[], binary: [] as number[] };
  const mb = { text: [] as number[], binary: [] as number[] };
  for (let r = 0; r < runs; r += 1) {
    // Alternate which mode reads the WAL first (page cache).
    for (const mode of r % 2 === 0 ? (["text", "binary"] as const) : (["binary", "text"] as const)) {
      const drain = await drainSlot(sourceUrl, `binexp_${mode}_${r}`, mode === "binary", afterLsn);
      log(`walsender run ${r + 1} ${mode}: ${drain.cpu.toFixed(2)} s CPU, ${(drain.bytes / 1e6).toFixed(0)} MB`);
      cpu[mode].push(drain.cpu);
      mb[mode].push(drain.bytes / 1e6);
    }
  }
  return [
    { label: `walsender CPU, text pgoutput (${transactions} tx)`, values: cpu.text, unit: "s" },
    { label: `walsender CPU, binary pgoutput (${transactions} tx)`, values: cpu.binary, unit: "s" },
    { label: "pgoutput bytes, text", values: mb.text, unit: "MB" },
    { label: "pgoutput bytes, binary", values: mb.binary, unit: "MB" },
  ];
}

// ---------------------------------------------------------------- 2. target apply, text vs binary COPY

interface Kind {
  name: string;
  table: string;
  key: string[];
  /** Rows of this kind in one bench_tx transaction. */
  perTransaction: number;
  /** Rows applied per run (figures are per 10k rows; the narrow kinds take more for the 10 ms tick). */
  count(size: FixtureSize): number;
  /** After the apply: how many rows of the target show it (must be `count`). */
  check: string;
  /**
   * An update of existing rows, applied a second time in the same database: the drain updates each
   * memory entry 4 times (and each hot profile 120 times), and only the first write of a page after a
   * checkpoint pays its full-page image and a cold read. Pass 1 and pass 2 are reported apart.
   */
  again: boolean;
  /** The rows numbered [lo, hi], every column of the table in order (as the drain's changes carry them). */
  rows(lo: number, hi: number, size: FixtureSize): string;
}

const KINDS: Kind[] = [
  {
    name: "memory_entries update (1536-d vector)",
    table: "memory_entries",
    key: ["id"],
    perTransaction: 1,
    count: (s) => s.memoryEntries,
    again: true,
    check: "SELECT count(*) FROM memory_entries m JOIN bench_vectors v ON v.id = (m.id * 7) % 512 + 1 WHERE m.embedding = v.v",
    rows: (lo, hi) => `SELECT m.id, m.user_id, m.kind, m.content, m.metadata, v.v AS embedding, m.importance, m.created_at, now() AS updated_at
      FROM memory_entries m JOIN bench_vectors v ON v.id = (m.id * 7) % 512 + 1 WHERE m.id BETWEEN ${lo} AND ${hi} ORDER BY m.id`,
  },
  {
    name: "user_profiles update (jsonb)",
    table: "user_profiles",
    key: ["id"],
    perTransaction: 2,
    count: (s) => s.profiles,
    again: true,
    check: "SELECT count(*) FROM user_profiles WHERE settings ? 'last_n'",
    rows: (lo, hi) => `SELECT id, email, display_name, first_name, last_name, company, plan, locale, timezone, country, avatar_url,
      jsonb_set(settings, '{last_n}', to_jsonb(id)) AS settings, preferences, feature_flags, login_count + 1 AS login_count,
      now() AS last_login_at, created_at, now() AS updated_at FROM user_profiles WHERE id BETWEEN ${lo} AND ${hi} ORDER BY id`,
  },
  {
    name: "event_log insert (narrow)",
    table: "event_log",
    key: ["id"],
    perTransaction: 2,
    count: () => 60_000,
    again: false,
    check: `SELECT count(*) FROM event_log WHERE id > ${NEW_IDS}`,
    rows: (lo, hi, s) => `SELECT ${NEW_IDS}::bigint + g AS id, (g % ${s.profiles} + 1)::bigint AS user_id, 'bench' AS kind, now() AS at, g % 2 = 0 AS ok
      FROM generate_series(${lo}, ${hi}) AS g`,
  },
  {
    name: "usage_analytics insert (partitioned, numeric)",
    table: "usage_analytics",
    key: ["id", "at"],
    perTransaction: 1,
    count: () => 60_000,
    again: false,
    check: `SELECT count(*) FROM usage_analytics WHERE id > ${NEW_IDS}`,
    rows: (lo, hi, s) => `SELECT ${NEW_IDS}::bigint + g AS id, timestamptz '2025-01-01 00:00+00' + (g % 365) * interval '1 day' AS at,
      (g % ${s.profiles} + 1)::bigint AS user_id, 'tokens' AS metric, (g % 1000)::numeric(14,3) AS quantity, ((g % 1000) * 0.000002)::numeric(14,6) AS cost
      FROM generate_series(${lo}, ${hi}) AS g`,
  },
  {
    name: "audit_trail insert (keyless)",
    table: "audit_trail",
    key: [],
    perTransaction: 1,
    count: () => 60_000,
    again: false,
    check: "SELECT count(*) FROM audit_trail WHERE action = 'bench'",
    rows: (lo, hi, s) => `SELECT 'user' || g % ${s.profiles} AS actor, 'bench' AS action, 'memory:' || g AS target, now() AS at FROM generate_series(${lo}, ${hi}) AS g`,
  },
];

/** Bytes pgferry's change buffer counts for a row of text values (apply/changeBuffer.ts valueBytes). */
function valueBytes(row: readonly Cell[]): number {
  return row.reduce((sum, v) => sum + (v === null ? 8 : v.length + 8), 32);
}

interface KindData {
  kind: Kind;
  table: TargetTable;
  text: Cell[][];
  /** One binary COPY stream per batch. */
  binary: Buffer[];
  batchRows: number;
}

async function targetTable(c: pg.Client, kind: Kind): Promise<TargetTable> {
  const { rows } = await c.query<{ name: string; type: string; cast: string }>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type, format_type(atttypid, -1) AS cast FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [`public.${kind.table}`],
  );
  const columns = rows.map((r) => ({ name: r.name, type: r.type, castType: r.cast }));
  return { id: `public.${kind.table}`, schema: "public", name: kind.table, columns, keyIndexes: kind.key.map((k) => columns.findIndex((c) => c.name === k)) };
}

/** The rows of every kind, as text (what pgoutput text mode carries) and as binary COPY batches. */
async function loadRows(sourceUrl: string, size: FixtureSize): Promise<KindData[]> {
  const client = await openClient(sourceUrl, { applicationName: "binexp-rows", rawText: true });
  try {
    const loaded = [];
    for (const kind of KINDS) {
      const table = await targetTable(client, kind);
      const cols = table.columns.map((c) => `s.${quoteIdent(c.name)}`);
      const text = (await client.query<Cell[]>({ text: `SELECT ${cols.map((c) => `${c}::text`).join(", ")} FROM (${kind.rows(1, kind.count(size), size)}) s`, rowMode: "array" })).rows;
      loaded.push({ kind, table, text, binary: [] as Buffer[], batchRows: 0 });
    }
    // One 8 MiB batch (src/config batchMaxBytes; batchMaxRows 10k changes) holds this many transactions.
    const bytesPerTx = loaded.reduce((sum, d) => sum + d.kind.perTransaction * (d.text.reduce((s, r) => s + valueBytes(r), 0) / d.text.length), 0);
    const txPerBatch = Math.floor(Math.min(10_000 / CHANGES_PER_TRANSACTION, (8 * 1024 * 1024) / bytesPerTx));
    log(`apply: ${bytesPerTx.toFixed(0)} counted bytes per transaction → ${txPerBatch} transactions per batch`);
    for (const d of loaded) {
      d.batchRows = txPerBatch * d.kind.perTransaction;
      const cols = d.table.columns.map((c) => `s.${quoteIdent(c.name)}`).join(", ");
      for (let lo = 1; lo <= d.text.length; lo += d.batchRows) {
        const hi = Math.min(d.text.length, lo + d.batchRows - 1);
        const chunks: Buffer[] = [];
        const stream = client.query(copyTo(`COPY (SELECT ${cols} FROM (${d.kind.rows(lo, hi, size)}) s) TO STDOUT (FORMAT binary)`));
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        d.binary.push(Buffer.concat(chunks));
      }
      const textMb = d.text.reduce((s, r) => s + valueBytes(r), 0) / 1e6;
      const binaryMb = d.binary.reduce((s, b) => s + b.length, 0) / 1e6;
      log(`apply: ${d.kind.name}: ${d.text.length} rows, batches of ${d.batchRows}, text ${textMb.toFixed(1)} MB, binary COPY ${binaryMb.toFixed(1)} MB`);
    }
    return loaded;
  } finally {
    await client.end();
  }
}

/** Today's path: prepared upsert (or plain insert for a keyless table) per batch, one transaction each. */
async function applyText(c: pg.Client, d: KindData): Promise<void> {
  const all = d.table.columns.map((_, i) => i);
  for (let i = 0; i < d.text.length; i += d.batchRows) {
    const rows = d.text.slice(i, i + d.batchRows);
    const s = d.table.keyIndexes.length > 0 ? upsertStatement(d.table, all, rows) : insertRowsStatement(d.table, rows);
    await c.query("BEGIN");
    await c.query({ name: s.name!, text: s.text, values: s.values });
    await c.query("COMMIT");
  }
}

/** The binary path: COPY the batch's tuples into a staging table, then the same upsert from it. */
async function applyBinary(c: pg.Client, d: KindData): Promise<void> {
  const stage = `binexp_stage_${d.table.name}`;
  const typed = d.table.columns.map((col, i) => `c${i} ${col.type}`);
  await c.query(`CREATE TEMP TABLE IF NOT EXISTS ${stage} (${typed.join(", ")}) ON COMMIT DELETE ROWS`);
  const all = d.table.columns.map((_, i) => i);
  const from = `pg_temp.${stage} AS u`;
  const insert =
    d.table.keyIndexes.length > 0
      ? upsertText(d.table, all, from, "u", "")
      : `INSERT INTO public.${quoteIdent(d.table.name)} SELECT ${all.map((i) => `u.c${i}`).join(", ")} FROM ${from}`;
  for (const batch of d.binary) {
    await c.query("BEGIN");
    const ingest = c.query(copyFrom(`COPY pg_temp.${stage} FROM STDIN (FORMAT binary)`));
    await new Promise<void>((resolve, reject) => {
      ingest.on("finish", resolve);
      ingest.on("error", reject);
      ingest.end(batch);
    });
    await c.query({ name: `binexp_${d.table.name}`, text: insert });
    await c.query("COMMIT");
  }
}

async function applyExperiment(sourceUrl: string, target: Awaited<ReturnType<typeof startPair>>["target"], size: FixtureSize, cleanup: Cleanup): Promise<Figure[]> {
  const data = await loadRows(sourceUrl, size);
  const cpu = new Map<string, number[]>();
  // The drain's rows of these kinds (deletes left out): each kind's last pass, scaled to its count in the backlog.
  const transactions = Math.round(60_000 * scale);
  const mix = { text: [] as number[], binary: [] as number[] };
  for (let r = 0; r < runs; r += 1) {
    for (const mode of r % 2 === 0 ? (["text", "binary"] as const) : (["binary", "text"] as const)) {
      const db = `binexp_apply_${r}_${mode}`;
      const drop = await createDatabase(target, db, cleanup, TEMPLATE_DB);
      await checkpoint(target);
      const c = await openClient(target.url(db), { applicationName: "binexp-apply", rawText: true });
      try {
        await prepareApplySession(c);
        const pid = (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
        let mixSeconds = 0;
        for (const d of data) {
          for (let pass = 1; pass <= (d.kind.again ? 2 : 1); pass += 1) {
            const before = cpuSeconds(pid)!;
            await (mode === "text" ? applyText(c, d) : applyBinary(c, d));
            const per10k = ((cpuSeconds(pid)! - before) * 10_000) / d.text.length;
            const applied = Number((await c.query<{ count: string }>(d.kind.check)).rows[0]!.count);
            if (applied !== d.text.length) throw new Error(`${mode} ${d.kind.name}: the target shows ${applied} of ${d.text.length} rows`);
            const label = `${d.kind.name}${d.kind.again ? ` pass ${pass}` : ""}, ${mode}`;
            log(`apply run ${r + 1} ${label}: ${per10k.toFixed(3)} s CPU per 10k rows`);
            cpu.set(label, [...(cpu.get(label) ?? []), per10k]);
            if (pass === (d.kind.again ? 2 : 1)) mixSeconds += (per10k * d.kind.perTransaction * transactions) / 10_000;
          }
        }
        mix[mode].push(mixSeconds);
      } finally {
        await c.end();
      }
      await drop();
    }
  }
  return [
    ...[...cpu.entries()].map(([label, values]) => ({ label: `target CPU per 10k rows, ${label}`, values, unit: "s" })),
    { label: `target CPU for the upserts and inserts of a ${transactions}-transaction backlog, text`, values: mix.text, unit: "s" },
    { label: `target CPU for the upserts and inserts of a ${transactions}-transaction backlog, binary`, values: mix.binary, unit: "s" },
  ];
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  cleanup.onSignals(log);
  try {
    const size = fixtureSize(scale);
    const { source, target } = await startPair("binexp", cleanup);
    log(`clusters up; fixture at scale ${scale}`);
    await createTemplate(source, size, cleanup);
    // The target holds the same rows, so the updates conflict with existing rows as in the drain.
    await createDatabase(target, TEMPLATE_DB, cleanup);
    if (args.part !== "walsender") await withClient(target.url(TEMPLATE_DB), (c) => generateFixture(c, size));
    const sourceUrl = source.url(TEMPLATE_DB);
    const figures = [
      ...(args.part === "walsender" ? [] : await applyExperiment(sourceUrl, target, size, cleanup)),
      ...(args.part === "apply" ? [] : await walsenderExperiment(sourceUrl, size)),
    ];
    console.log("\n" + figures.map(describe).join("\n"));
  } finally {
    await cleanup.runAll(log);
  }
}

await main();
