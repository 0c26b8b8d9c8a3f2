/**
 * Both directions at once on the reorganisation example (config/reorg.example.yaml with a `reverse`
 * section): the forward pipeline carries the old project into the new one, the reverse carries the
 * new project's own writes back through the inverse mapping. Each change makes exactly one trip
 * (counted: applied once, dropped once by the other direction's origin filter), inserts on both sides
 * take keys that cannot collide, same-row conflicts are resolved last-writer-wins and recorded by both
 * directions, and after SIGKILLs of each direction mid-load both databases end equal through the
 * mapping, row by row.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../src/config/index.js";
import { oldProjectLoad, seedOldProject, SOURCE_DDL, TARGET_DDL } from "../../tools/demo/oldProject.js";
import type { TestDatabases } from "../harness/databases.js";
import { pipelineFailed, streaming, type RunningPipeline } from "../harness/pipelineRunner.js";
import { runCli, writeConfigFile, type ChildRun } from "../harness/processRunner.js";
import { seededRandom } from "../harness/random.js";
import { CONFIG_DIR, firstRow, reorgBothWaysText, reorgDifference, reorgEnv } from "../harness/reorgBothWays.js";
import { useTestPair } from "../harness/testPair.js";
import { waitFor } from "../harness/waitFor.js";


let db: TestDatabases;
const pair = useTestPair("bidir", async (created) => {
  db = created;
  await db.source.query(SOURCE_DDL);
  await db.target.query(TARGET_DDL);
  await seedOldProject(db.source, 1);
});

const configText = (resolution = "last-writer-wins") => reorgBothWaysText(db, `  conflicts: ${resolution}\n`);
const env = () => reorgEnv(db);
const difference = () => reorgDifference(db);
const one = firstRow;

function config(resolution?: string): Config {
  const cfg = parseConfig(configText(resolution), resolve(CONFIG_DIR, "reorg.bidirectional.yaml"), env());
  cfg.apply.onError = "stop"; // no faults are injected: any apply error is a failure, reported at once
  return cfg;
}

/** Both directions streaming, the reverse started once the forward copied every table. */
async function startBoth(cfg: Config): Promise<{ forward: RunningPipeline; reverse: RunningPipeline }> {
  const forward = pair.start(cfg);
  await streaming(forward, 120_000);
  const reverse = pair.start(cfg, { direction: "reverse" });
  await streaming(reverse);
  return { forward, reverse };
}

const total = (running: RunningPipeline, table: string, op: string) => running.applied.get(table)?.[op] ?? 0;

/**
 * A marker row written on one side and waited for on the other: every change the writing side had
 * committed before it has then been read by the direction that carries it (applied or dropped).
 */
async function roundTrip(from: pg.Pool, to: pg.Pool, table: "old" | "new", tag: string, running: RunningPipeline): Promise<void> {
  if (table === "old") {
    await from.query("INSERT INTO public.topics (name, slug, description) VALUES ($1, $1, 'marker')", [tag]);
    await waitFor(() => one<{ n: number }>(to, "SELECT count(*)::int AS n FROM security_service.topics WHERE slug = $1", [tag]), {
      description: `marker ${tag} on the new side`, until: (r) => r.n === 1, timeoutMs: 60_000, failIf: pipelineFailed(running),
    });
  } else {
    // A key in the new side's range, as the new application's own sequence would give it.
    await from.query(
      "INSERT INTO security_service.topics (id, name, slug, description, created_at) VALUES ((SELECT greatest(max(id) + 1, 1500000000) FROM security_service.topics), $1, $1, 'marker', now())",
      [tag],
    );
    await waitFor(() => one<{ n: number }>(to, "SELECT count(*)::int AS n FROM public.topics WHERE slug = $1", [tag]), {
      description: `marker ${tag} on the old side`, until: (r) => r.n === 1, timeoutMs: 60_000, failIf: pipelineFailed(running),
    });
  }
}

describe("reverse replication on the reorganisation example", () => {
  it("carries each change exactly once in each direction, with inserts on both sides that cannot collide", async () => {
    const cfg = config();
    const { forward, reverse } = await startBoth(cfg);

    // The new side's key sequences moved into their own range when the reverse started.
    const sequences = await one<{ org: string; msg: string; legacy: string }>(
      db.target,
      `SELECT (SELECT last_value FROM shared_services.organizations_id_seq)::text AS org, (SELECT last_value FROM ai_chat.messages_id_seq)::text AS msg,
              (SELECT last_value FROM security_service.api_keys_legacy_id_seq)::text AS legacy`,
    );
    expect(sequences).toEqual({ org: "1073741824", msg: "4611686018427387904", legacy: "1073741824" });

    // Old side: 5 updates and 3 inserts of organizations. New side: 4 updates of other organizations, 3 inserts (identity keys),
    // 2 messages (serial), 2 user api keys (legacy id from the new side's sequence), a profile edit (one part of the users split).
    await db.source.query("UPDATE organizations SET name = 'old edit ' || id WHERE id BETWEEN 1 AND 5");
    await db.source.query("INSERT INTO organizations (name, slug) SELECT 'old org ' || g, 'old-org-' || g FROM generate_series(1, 3) g");
    await db.target.query("UPDATE shared_services.organizations SET name = 'new edit ' || id WHERE id BETWEEN 11 AND 14");
    await db.target.query(
      "INSERT INTO shared_services.organizations (name, slug, plan, created_at) SELECT 'new org ' || g, 'new-org-' || g, 'team', now() FROM generate_series(1, 3) g",
    );
    await db.target.query(
      `INSERT INTO ai_chat.messages (conversation_id, role, content, created_at)
       SELECT (SELECT min(id) FROM ai_chat.conversations), 'user', 'written on the new side ' || g, now() FROM generate_series(1, 2) g`,
    );
    await db.target.query(
      `INSERT INTO security_service.api_keys (source, owner_type, owner_id, name, key_hash, status, created_at)
       SELECT 'api_keys', 'user', (SELECT min(id) FROM auth_gateway.user_accounts)::text, 'new key ' || g, md5('nk' || g), 'active', now() FROM generate_series(1, 2) g`,
    );
    await db.target.query("UPDATE shared_services.profiles SET display_name = 'edited on the new side' WHERE user_id = (SELECT min(user_id) FROM shared_services.profiles)");
    // A key of another source of the merged table (uuid ids, no integer legacy id): routed back to its own old table only.
    await db.target.query("UPDATE security_service.api_keys SET name = 'v2 renamed on the new side' WHERE id = (SELECT min(id::text)::uuid FROM security_service.api_keys WHERE source = 'vendor_api_keys_v2')");

    await roundTrip(db.source, db.target, "old", "marker-old-1", forward);
    await roundTrip(db.target, db.source, "new", "marker-new-1", reverse);

    // Applied once by the direction that carries it; dropped once (by origin) by the other: no ping-pong.
    expect(total(forward, "public.organizations", "update")).toBe(5);
    expect(total(forward, "public.organizations", "insert")).toBe(3);
    expect(total(reverse, "shared_services.organizations", "update")).toBe(4);
    expect(total(reverse, "shared_services.organizations", "insert")).toBe(3);
    expect(total(reverse, "ai_chat.messages", "insert")).toBe(2);
    expect(total(reverse, "security_service.api_keys", "insert")).toBe(2);
    expect(total(reverse, "security_service.api_keys", "update")).toBe(1);
    expect(total(reverse, "shared_services.profiles", "update")).toBe(1);
    expect(total(forward, "public.topics", "insert")).toBe(1); // the old marker
    expect(total(reverse, "security_service.topics", "insert")).toBe(1); // the new marker
    // Everything the forward applied came back to the reverse's reader and was dropped, and vice versa.
    const forwardApplied = [...forward.applied.values()].reduce((n, ops) => n + Object.values(ops).reduce((a, b) => a + b, 0), 0);
    const reverseApplied = [...reverse.applied.values()].reduce((n, ops) => n + Object.values(ops).reduce((a, b) => a + b, 0), 0);
    // Waited for: the last changes' way back ends when the other side's WAL with them is flushed and decoded.
    const echoes = await waitFor(() => ({ reverse: reverse.originFiltered, forward: forward.originFiltered }), {
      description: `every applied change to come back and be dropped (forward applied ${forwardApplied}, reverse applied ${reverseApplied})`,
      until: (n) => n.reverse >= forwardApplied && n.forward >= reverseApplied,
      timeoutMs: 30_000,
    });
    expect(echoes.reverse).toBeGreaterThanOrEqual(forwardApplied);
    expect(echoes.forward).toBeGreaterThanOrEqual(reverseApplied);

    // The new side's rows are on the old side, under the keys the new side gave them.
    const old = await one<{ orgs: number; messages: number; keys: number; v2: number; profile: string }>(
      db.source,
      `SELECT (SELECT count(*)::int FROM organizations WHERE id >= 1073741824 AND name LIKE 'new org %') AS orgs,
              (SELECT count(*)::int FROM messages WHERE id >= 4611686018427387904 AND content LIKE 'written on the new side %') AS messages,
              (SELECT count(*)::int FROM api_keys WHERE id >= 1073741824 AND name LIKE 'new key %') AS keys,
              (SELECT count(*)::int FROM vendor_api_keys_v2 WHERE label = 'v2 renamed on the new side') AS v2,
              (SELECT display_name FROM users WHERE id = (SELECT min(id) FROM users WHERE deleted_at IS NULL)) AS profile`,
    );
    expect(old).toEqual({ orgs: 3, messages: 2, keys: 2, v2: 1, profile: "edited on the new side" });
    expect(await difference()).toBeNull();
  });

  it("resolves same-row conflicts last-writer-wins and records them in both directions", async () => {
    const cfg = config();
    // Both sides write the same two rows while neither pipeline runs: organizations 2 (old first, new last) and 3 (new first, old last).
    // Each write commits at a later millisecond than the one before (commit times are compared to the millisecond).
    await db.source.query("UPDATE organizations SET name = 'old, earlier' WHERE id = 2");
    await laterThan(db.source, "organizations", 2);
    await db.target.query("UPDATE shared_services.organizations SET name = 'new, later' WHERE id = 2");
    await laterThan(db.target, "shared_services.organizations", 2);
    await db.target.query("UPDATE shared_services.organizations SET name = 'new, earlier' WHERE id = 3");
    await laterThan(db.target, "shared_services.organizations", 3);
    await db.source.query("UPDATE organizations SET name = 'old, later' WHERE id = 3");
    const { forward, reverse } = await startBoth(cfg);
    await roundTrip(db.source, db.target, "old", "marker-old-2", forward);
    await roundTrip(db.target, db.source, "new", "marker-new-2", reverse);

    const names = async (pool: pg.Pool, table: string) => (await pool.query<{ id: number; name: string }>(`SELECT id, name FROM ${table} WHERE id IN (2, 3) ORDER BY id`)).rows;
    const want = [{ id: 2, name: "new, later" }, { id: 3, name: "old, later" }];
    expect(await names(db.source, "organizations")).toEqual(want);
    expect(await names(db.target, "shared_services.organizations")).toEqual(want);
    // Each direction met both conflicts: the forward kept the new row 2 and took the old row 3; the reverse the other way round.
    expect(Object.fromEntries(forward.conflicts)).toEqual({ "shared_services.organizations|local": 1, "shared_services.organizations|incoming": 1 });
    expect(Object.fromEntries(reverse.conflicts)).toEqual({ "public.organizations|local": 1, "public.organizations|incoming": 1 });
    const recorded = async (pool: pg.Pool, schema: string) =>
      (await pool.query<{ direction: string; kept: string; key_columns: string }>(`SELECT direction, kept, key_columns FROM ${schema}.conflicts ORDER BY direction, kept`)).rows;
    expect(await recorded(db.target, "_pgferry")).toEqual([
      { direction: "forward", kept: "incoming", key_columns: "id" },
      { direction: "forward", kept: "local", key_columns: "id" },
    ]);
    expect(await recorded(db.source, "_pgferry")).toEqual([
      { direction: "reverse", kept: "incoming", key_columns: "id" },
      { direction: "reverse", kept: "local", key_columns: "id" },
    ]);
    expect(await difference()).toBeNull();
  });

  it("ends with both sides equal after SIGKILLs of each direction mid-load, with writes on both sides", async () => {
    const file = await writeConfigFile(configText());
    const random = seededRandom(Number(process.env.PGFERRY_CRASH_SEED ?? 7));
    const runs: Record<"forward" | "reverse", ChildRun[]> = { forward: [], reverse: [] };
    const start = (direction: "forward" | "reverse") => {
      const run = runCli(["run", "--config", file, "--direction", direction], env());
      runs[direction].push(run);
      return run;
    };
    const tail = () =>
      (["forward", "reverse"] as const)
        .map((d) => `--- ${d} (last run) ---\n${(runs[d].at(-1)?.output.join("") ?? "").split("\n").slice(-30).join("\n")}`)
        .join("\n");
    const live = { forward: start("forward"), reverse: start("reverse") };
    const controller = new AbortController();
    try {
      // Both directions streaming before the new side takes writes (the reverse waits for the forward's copies).
      // A daemon that ended by itself (a preflight refusal) will not get there: fail with its output.
      const ended = () => {
        const gone = (["forward", "reverse"] as const).find((d) => live[d].child.exitCode !== null);
        return gone === undefined ? undefined : `the ${gone} daemon exited with ${live[gone].child.exitCode}:\n${live[gone].output.join("").slice(-3000)}`;
      };
      await waitFor(() => reverseStreaming(), { description: "the reverse pipeline streaming", timeoutMs: 120_000, intervalMs: 250, failIf: ended }).catch((error: unknown) => {
        console.log(tail());
        throw error;
      });
      // Old side: the example's mixed load. New side: edits of organizations, profiles, messages of its own.
      const oldLoad = oldProjectLoad(db.source, { transactions: 1_000_000, signal: controller.signal, seedOffset: 30_000_000, concurrency: 1 });
      const newLoad = newProjectLoad(db.target, controller.signal);
      oldLoad.catch(() => undefined);
      newLoad.catch(() => undefined);
      for (let kill = 0; kill < 6; kill += 1) {
        const direction = kill % 2 === 0 ? "forward" : "reverse";
        await new Promise((r) => setTimeout(r, 1000 + random() * 2000));
        live[direction].child.kill("SIGKILL");
        await live[direction].exited;
        live[direction] = start(direction);
      }
      controller.abort();
      const [oldCommitted, newCommitted] = await Promise.all([oldLoad, newLoad]);
      expect(oldCommitted).toBeGreaterThan(20);
      expect(newCommitted).toBeGreaterThan(20);

      const settled = await waitFor(difference, { description: "both sides equal through the mapping", until: (d) => d === null, timeoutMs: 120_000, intervalMs: 250, failIf: ended }).catch(async (error: unknown) => {
        console.log(tail());
        console.log(await conflictsOfFirstDifference(String(error)));
        // Every daemon run's whole output, for a closer look (PGFERRY_CHAOS_LOGS: a directory).
        const logs = process.env.PGFERRY_CHAOS_LOGS;
        if (logs !== undefined) {
          for (const d of ["forward", "reverse"] as const) runs[d].forEach((run, i) => writeFileSync(resolve(logs, `${d}-${i}.log`), run.output.join("")));
        }
        throw error;
      });
      expect(settled).toBeNull();
      // pgferry's own check agrees, in both directions (the reverse: each old table against the inverse of the new side).
      const verify = runCli(["verify", "--config", file, "--direction", "both"], env());
      const verified = await verify.exited;
      expect(verified.code, verify.output.join("").slice(-3000)).toBe(0);
      // The new side's own inserts are on the old side too, under the same keys.
      const ids = async (pool: pg.Pool, orgs: string, messages: string) =>
        one<{ orgs: string; messages: string }>(
          pool,
          `SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM ${orgs} WHERE id >= 1073741824) AS orgs,
                  (SELECT string_agg(id::text, ',' ORDER BY id) FROM ${messages} WHERE id >= 4611686018427387904) AS messages`,
        );
      const fresh = await ids(db.target, "shared_services.organizations", "ai_chat.messages");
      expect(await ids(db.source, "organizations", "messages")).toEqual(fresh);
      expect(fresh.orgs.split(",").length).toBeGreaterThan(3);
    } finally {
      controller.abort();
      for (const run of [live.forward, live.reverse]) run.child.kill("SIGTERM");
      await Promise.all([live.forward.exited, live.reverse.exited]);
    }
  });
});

/** Waits until both clocks are a millisecond past the commit of the row's last write (both clusters run on this host). */
async function laterThan(pool: pg.Pool, table: string, id: number): Promise<void> {
  const { committed } = await one<{ committed: string }>(pool, `SELECT pg_xact_commit_timestamp(xmin)::text AS committed FROM ${table} WHERE id = $1`, [id]);
  await waitFor(() => one<{ past: boolean }>(db.source, "SELECT date_trunc('milliseconds', clock_timestamp()) > date_trunc('milliseconds', $1::timestamptz) AS past", [committed]), {
    description: `a millisecond past ${committed}`,
    until: (r) => r.past,
    intervalMs: 1,
  });
}

/** Whether the reverse pipeline has its state on the old side with every table ready (it streams from then on). */
/**
 * For a failure: what each direction recorded about the first differing row (its first column taken
 * as the key, as in organizations, messages and profiles), to tell a missed conflict from one judged
 * differently on each side.
 */
async function conflictsOfFirstDifference(message: string): Promise<string> {
  const table = /([a-z_]+\.[a-z_]+): row \d/.exec(message)?.[1];
  const fields = /expected \(([^,)]+),([^,)]+)/.exec(message);
  if (table === undefined || !fields) return "no differing row to look up";
  // The merged api_keys print (source, legacy_id, ...) and match on both; the other tables lead with their key.
  const merged = table === "security_service.api_keys";
  const [first, second] = [fields[1]!, fields[2]!];
  const keys = merged ? { forward: `${first}, ${second}`, reverse: second } : { forward: first, reverse: first };
  const lines = [`conflicts recorded for ${table} key ${keys.forward} (old key ${keys.reverse}):`];
  for (const [side, pool, key] of [["old (reverse)", db.source, keys.reverse], ["new (forward)", db.target, keys.forward]] as const) {
    const { rows } = await pool
      .query(
        `SELECT direction, table_name, incoming_commit_time::text AS incoming, local_commit_time::text AS local, kept, detected_at::text AS detected
         FROM _pgferry.conflicts WHERE key_fingerprint = left(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 16) ORDER BY id`,
        [key],
      )
      .catch((e: unknown) => ({ rows: [{ error: String(e) }] }));
    lines.push(`  ${side}: ${JSON.stringify(rows)}`);
  }
  // Each side's row, with its last writer (origin name, or none: the application) and that commit's time.
  const oldTable = merged
    ? `public.${first}`
    : ({ "ai_chat.messages": "public.messages", "shared_services.organizations": "public.organizations", "shared_services.profiles": "public.users" } as Record<string, string>)[table];
  if (oldTable === undefined) return lines.join("\n");
  const newWhere = merged ? "t.source = $1 AND t.legacy_id = $2" : `t.${table === "shared_services.profiles" ? "user_id" : "id"}::text = $1`;
  for (const [side, pool, name, where, values] of [
    ["old", db.source, oldTable, "t.id::text = $1", [keys.reverse]],
    ["new", db.target, table, newWhere, merged ? [first, second] : [first]],
  ] as const) {
    const { rows } = await pool
      .query(
        `SELECT t::text AS row, w.timestamp::text AS written, coalesce(o.roname, '(application)') AS writer
         FROM ${name} t LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(t.xmin) w ON true LEFT JOIN pg_replication_origin o ON o.roident = w.roident
         WHERE ${where}`,
        [...values],
      )
      .catch((e: unknown) => ({ rows: [{ error: String(e) }] }));
    lines.push(`  ${side} row ${name}: ${JSON.stringify(rows)}`);
  }
  return lines.join("\n");
}

async function reverseStreaming(): Promise<boolean> {
  const { rows } = await db.source
    .query<{ ready: boolean }>(`SELECT bool_and(state = 'ready') AND count(*) > 0 AS ready FROM _pgferry.tables WHERE pipeline = $1`, [`pgferry_${db.name}_rev`])
    .catch(() => ({ rows: [{ ready: false }] }));
  return rows[0]?.ready === true;
}

/**
 * Writes an application on the new project makes for the users routed to it, consistent with the
 * mapping's derived columns: organizations (identity keys), messages (serial keys) and the merged
 * api_keys (uuid keys, legacy ids from the new side's sequence; renames of keys of every source but
 * the service tokens, whose forward-only status is an open case of docs/reverse.md). Profile edits (the users split's
 * update-only part) are left out: the old load soft-deletes and restores random users, and a profile
 * edited on the new side while its user leaves and re-enters the profiles filter in separate batches
 * ends differently on the two sides (docs/reverse.md, "Splits under concurrent writes"; 2 of 16 runs).
 * The profile path is covered change by change in the first test, and a row replaced within one
 * batch in conflicts.test.ts.
 */
async function newProjectLoad(pool: pg.Pool, signal: AbortSignal): Promise<number> {
  const statements = [
    "INSERT INTO shared_services.organizations (name, slug, plan, created_at) VALUES ('new load ' || $1, 'new-load-' || $1, 'team', now())",
    "UPDATE shared_services.organizations SET name = 'new load edit ' || $1 WHERE id = (SELECT id FROM shared_services.organizations ORDER BY random() LIMIT 1)",
    `INSERT INTO ai_chat.messages (conversation_id, role, content, created_at)
       SELECT id, 'user', 'new load ' || $1, now() FROM ai_chat.conversations ORDER BY random() LIMIT 1`,
    "UPDATE ai_chat.messages SET token_count = coalesce(token_count, 0) + 1 WHERE id = (SELECT id FROM ai_chat.messages ORDER BY random() LIMIT 1)",
    "DELETE FROM ai_chat.messages WHERE id = (SELECT id FROM ai_chat.messages WHERE id >= 4611686018427387904 ORDER BY random() LIMIT 1)",
    // The merged api_keys: a user key created on the new side (its legacy id from the new side's sequence), and a rename of any key.
    `INSERT INTO security_service.api_keys (source, owner_type, owner_id, name, key_hash, status, created_at)
       SELECT 'api_keys', 'user', id::text, 'new load key ' || $1, md5('nlk' || $1), 'active', now() FROM auth_gateway.user_accounts ORDER BY random() LIMIT 1`,
    // Not service tokens: their status is forward-only (docs/reverse.md, "a forward-only column under a conflict").
    "UPDATE security_service.api_keys SET name = 'new load rename ' || $1 WHERE id = (SELECT id FROM security_service.api_keys WHERE source <> 'service_tokens' ORDER BY random() LIMIT 1)",
  ];
  let committed = 0;
  for (let t = 0; !signal.aborted; t += 1) {
    try {
      const sql = statements[t % statements.length]!;
      await pool.query(sql, sql.includes("$1") ? [`${t}`] : []);
      committed += 1;
    } catch (error) {
      // Two writers on one row (the old load's cascades) may deadlock or race a delete: not counted.
      if (!["40P01", "23505", "23503"].includes((error as { code?: string }).code ?? "")) throw error;
    }
  }
  return committed;
}
