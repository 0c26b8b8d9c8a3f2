/**
 * `pgferry cutover` and `pgferry rollback` on the reorganisation example (config/reorg.example.yaml
 * with a `reverse` section), both pipelines in-process, with least-privilege application roles on
 * each side (two per side, listed in cutover.freezeRoles). Under a write load of an old-side role the
 * cutover freezes the old roles (the load's writes fail read-only), waits for the forward pipeline,
 * syncs sequences, verifies, and ends with nothing lost and the new side's keys free to insert. A
 * rollback carries the new side's writes back and unfreezes the old roles. A failed step puts back
 * what it froze and records the failure; a re-run resumes.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { parseConfig, type Config } from "../../src/config/index.js";
import { cutover, cutoverStep, rollback, type CutoverStep } from "../../src/cutover/procedure.js";
import { oldProjectLoad, seedOldProject, SOURCE_DDL, TARGET_DDL } from "../../tools/demo/oldProject.js";
import type { TestDatabases } from "../harness/databases.js";
import { capturingLogger, pipelineFailed, streaming, type RunningPipeline } from "../harness/pipelineRunner.js";
import { writeConfigFile } from "../harness/processRunner.js";
import { CONFIG_DIR, firstRow, reorgBothWaysText, reorgDifference, reorgEnv } from "../harness/reorgBothWays.js";
import { useTestPair } from "../harness/testPair.js";
import { waitFor } from "../harness/waitFor.js";

const NEW_SCHEMAS = ["shared_services", "auth_gateway", "security_service", "vendors", "ai_chat", "billing", "marketplace", "analytics"];

// Roles are per cluster, and other files share the clusters: named after this run.
const suffix = randomBytes(3).toString("hex");
const ROLES = { old: [`app_old_web_${suffix}`, `app_old_jobs_${suffix}`], new: [`app_new_web_${suffix}`, `app_new_jobs_${suffix}`] };

let db: TestDatabases;
const pair = useTestPair("cutover", async (created) => {
  db = created;
  await db.source.query(SOURCE_DDL);
  await db.target.query(TARGET_DDL);
  await seedOldProject(db.source, 1);
  // Least privilege: connect, and read and write the application's tables (sequences through their defaults).
  for (const role of ROLES.old) {
    await db.source.query(`CREATE ROLE ${role} LOGIN; GRANT CONNECT ON DATABASE ${db.name} TO ${role}; GRANT USAGE ON SCHEMA public TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
  }
  for (const role of ROLES.new) {
    await db.target.query(`CREATE ROLE ${role} LOGIN; GRANT CONNECT ON DATABASE ${db.name} TO ${role}; GRANT USAGE ON SCHEMA ${NEW_SCHEMAS.join(", ")} TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${NEW_SCHEMAS.join(", ")} TO ${role};
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${NEW_SCHEMAS.join(", ")} TO ${role}`);
  }
});

const appPools: pg.Pool[] = [];
afterAll(async () => {
  await Promise.all(appPools.map((p) => p.end().catch(() => undefined)));
  // Registered after the pair's hooks, so it runs before the databases are dropped.
  for (const [pool, roles] of [[db.source, ROLES.old], [db.target, ROLES.new]] as const) {
    for (const role of roles) {
      await pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
      await pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`).catch(() => undefined);
    }
  }
});

/** A pool on one side as one of its application roles (the test clusters trust local connections). */
function appPool(side: "old" | "new", role: string): pg.Pool {
  const url = new URL(side === "old" ? db.sourceUrl : db.targetUrl);
  url.username = role;
  url.password = "";
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on("error", () => undefined); // an idle session ended by a freeze
  appPools.push(pool);
  return pool;
}

function configText(): string {
  return reorgBothWaysText(db, "", `cutover:\n  freezeRoles:\n    old: [${ROLES.old.join(", ")}]\n    new: [${ROLES.new.join(", ")}]\n`);
}

const env = () => reorgEnv(db);

function config(): Config {
  const cfg = parseConfig(configText(), resolve(CONFIG_DIR, "reorg.cutover.yaml"), env());
  cfg.apply.onError = "stop";
  return cfg;
}

const difference = () => reorgDifference(db);
const one = firstRow;

/** Each role's own setting of default_transaction_read_only in the test database (null: none). */
async function readOnlySettings(pool: pg.Pool, roles: readonly string[]): Promise<(string | null)[]> {
  const { rows } = await pool.query<{ value: string | null }>(
    `SELECT (SELECT substr(c, 31) FROM pg_db_role_setting s, unnest(s.setconfig) c
             WHERE s.setrole = r.oid AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND c LIKE 'default_transaction_read_only=%') AS value
     FROM unnest($1::text[]) WITH ORDINALITY AS w(name, n) JOIN pg_roles r ON r.rolname = w.name ORDER BY w.n`,
    [roles],
  );
  return rows.map((r) => r.value);
}

async function startBoth(cfg: Config): Promise<{ forward: RunningPipeline; reverse: RunningPipeline }> {
  const forward = pair.start(cfg);
  await streaming(forward, 120_000);
  const reverse = pair.start(cfg, { direction: "reverse" });
  await streaming(reverse);
  return { forward, reverse };
}

function procedureOptions(cfg: Config, extra: { timeoutMs?: number; dryRun?: boolean } = {}) {
  const events: CutoverStep[] = [];
  const { log } = capturingLogger();
  return {
    events,
    options: { config: cfg, old: db.source, new: db.target, dryRun: extra.dryRun ?? false, log, timeoutMs: extra.timeoutMs ?? 120_000, onStep: (e: CutoverStep) => events.push(e) },
  };
}

/** The old project's write load as an application role, until its writes are refused read-only (or it is aborted). */
function appLoad(pool: pg.Pool, signal: AbortSignal): { committed: () => number; outcome: Promise<{ readOnly: boolean; ended: number }> } {
  let committed = 0;
  let ended = 0;
  const outcome = (async () => {
    for (let round = 0; !signal.aborted; round += 1) {
      try {
        committed += await oldProjectLoad(pool, { transactions: 20, concurrency: 2, seedOffset: 60_000_000 + round * 1000, signal });
      } catch (error) {
        if ((error as { code?: string }).code === "25006") return { readOnly: true, ended };
        // Its session ended by the freeze: the pool connects again, as the frozen role.
        // (The FATAL 57P01 is not always read before the socket closes: then it is a reset or an end.)
        if (["57P01", "ECONNRESET"].includes((error as { code?: string }).code ?? "") || /terminat|not queryable/i.test((error as Error).message)) {
          ended += 1;
          continue;
        }
        throw error;
      }
    }
    return { readOnly: false, ended };
  })();
  outcome.catch(() => undefined); // awaited by the test; a failure before that is not an unhandled rejection
  return { committed: () => committed, outcome };
}

const states = async (operation: string) =>
  (await db.target.query<{ step: number; state: string }>("SELECT step, state FROM _pgferry.cutover_steps WHERE operation = $1 ORDER BY step", [operation])).rows.map((r) => `${r.step}:${r.state}`);

describe("cutover and rollback on the reorganisation example", () => {
  it("cuts over under an old-side write load: the old roles frozen, nothing lost, the new side's keys free", async () => {
    const cfg = config();
    const { forward } = await startBoth(cfg);
    const controller = new AbortController();
    const load = appLoad(appPool("old", ROLES.old[0]!), controller.signal);
    // The other role holds a session of its own: the freeze ends it too.
    const jobs = new pg.Client({ connectionString: Object.assign(new URL(db.sourceUrl), { username: ROLES.old[1]!, password: "" }).toString() });
    jobs.on("error", () => undefined);
    await jobs.connect();
    await jobs.query("SELECT 1");
    try {
      await waitFor(() => load.committed(), { description: "the old-side load committing", until: (n) => n >= 40, timeoutMs: 60_000, failIf: pipelineFailed(forward) });

      const { events, options } = procedureOptions(cfg);
      const result = await cutover(options);
      expect(result.failed).toBeUndefined();
      expect(result.ok).toBe(true);
      expect(events.filter((e) => e.event === "done").map((e) => `${e.step} ${e.name}`)).toEqual(["1 freeze-old", "2 wait-forward", "3 sequences-verify", "4 finish"]);
      expect(events.find((e) => e.step === 1 && e.event === "done")?.message).toMatch(/; [1-9]\d* session\(s\) ended/);
      expect(result.reverse?.running).toBe(true);
      expect(events.at(-1)?.message).toMatch(/reverse pipeline: running/);

      // The load's writes fail read-only from the freeze on; the other role's session is gone.
      const outcome = await Promise.race([load.outcome, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the load did not stop")), 30_000))]);
      expect(outcome.readOnly).toBe(true);
      await expect(jobs.query("SELECT 1")).rejects.toThrow();
      expect(await readOnlySettings(db.source, ROLES.old)).toEqual(["on", "on"]);

      // Nothing lost: the new side holds exactly what the old side committed, at once (step 2 waited for it).
      expect(await difference()).toBeNull();
      expect(await states("cutover")).toEqual(["1:done", "2:done", "3:done", "4:done"]);
      expect(await cutoverStep(db.target, "_pgferry", `pgferry_${db.name}`)).toBe(5);

      // The new application inserts into every table with a serial or identity key, without a collision; the reverse carries them back.
      const web = appPool("new", ROLES.new[0]!);
      await web.query("INSERT INTO shared_services.organizations (name, slug, plan, created_at) VALUES ('after cutover', 'after-cutover', 'team', now())");
      await web.query(
        "INSERT INTO ai_chat.messages (conversation_id, role, content, created_at) SELECT min(id), 'user', 'after cutover', now() FROM ai_chat.conversations",
      );
      // These two rows are taken out again: the audit log is forward-only (nothing of it goes back), and an api key
      // created on the new side keeps its own uuid, which a later forward verify (the failure test's) reports as different.
      await web.query(
        `INSERT INTO security_service.api_keys (source, owner_type, owner_id, name, key_hash, status, created_at)
         SELECT 'api_keys', 'user', min(id)::text, 'after cutover', md5('after cutover'), 'active', now() FROM auth_gateway.user_accounts`,
      );
      await web.query("DELETE FROM security_service.api_keys WHERE name = 'after cutover'");
      await web.query("INSERT INTO shared_services.audit_log (actor, action, at) VALUES ('app', 'after cutover', now())");
      await web.query("DELETE FROM shared_services.audit_log WHERE action = 'after cutover'");
      await waitFor(difference, { description: "the new side's inserts carried back", until: (d) => d === null, timeoutMs: 60_000 });

      // A second run finds it done.
      const again = await cutover(procedureOptions(cfg).options);
      expect(again).toMatchObject({ ok: true, alreadyDone: true });
      expect(again.events.map((e) => e.event)).toEqual(["skipped", "skipped", "skipped", "skipped"]);
    } finally {
      controller.abort();
      await load.outcome.catch(() => undefined);
      await jobs.end().catch(() => undefined);
    }
  });

  it("rolls back: the new side's writes reach the old one, the new roles frozen, the old ones writable again", async () => {
    const cfg = config();
    await startBoth(cfg);
    const web = appPool("new", ROLES.new[0]!);
    await web.query("UPDATE shared_services.organizations SET name = 'renamed on the new side' WHERE id = 1");
    await web.query("INSERT INTO shared_services.organizations (name, slug, plan, created_at) VALUES ('new before rollback', 'new-before-rollback', 'team', now())");
    await web.query("UPDATE shared_services.profiles SET display_name = 'edited on the new side' WHERE user_id = (SELECT min(user_id) FROM shared_services.profiles)");

    const { events, options } = procedureOptions(cfg);
    const result = await rollback(options);
    expect(result.failed).toBeUndefined();
    expect(events.filter((e) => e.event === "done").map((e) => `${e.step} ${e.name}`)).toEqual(["1 freeze-new", "2 wait-reverse", "3 sequences-back", "4 unfreeze-old"]);

    // At once on the old side (step 2 waited for the reverse).
    const old = await one<{ renamed: string; inserted: number; profile: string }>(
      db.source,
      `SELECT (SELECT name FROM organizations WHERE id = 1) AS renamed, (SELECT count(*)::int FROM organizations WHERE slug = 'new-before-rollback') AS inserted,
              (SELECT display_name FROM users WHERE id = (SELECT min(id) FROM users WHERE deleted_at IS NULL)) AS profile`,
    );
    expect(old).toEqual({ renamed: "renamed on the new side", inserted: 1, profile: "edited on the new side" });
    expect(await difference()).toBeNull();

    // The new roles are read-only; the old ones have their settings back and insert without a collision.
    expect(await readOnlySettings(db.target, ROLES.new)).toEqual(["on", "on"]);
    await expect(appPool("new", ROLES.new[1]!).query("UPDATE shared_services.organizations SET name = 'refused' WHERE id = 2")).rejects.toMatchObject({ code: "25006" });
    expect(await readOnlySettings(db.source, ROLES.old)).toEqual([null, null]);
    const oldWeb = appPool("old", ROLES.old[0]!);
    await oldWeb.query("INSERT INTO organizations (name, slug) VALUES ('old after rollback', 'old-after-rollback')");
    await oldWeb.query("INSERT INTO messages (conversation_id, role, content) SELECT min(id), 'user', 'old after rollback' FROM conversations");

    expect(await states("rollback")).toEqual(["1:done", "2:done", "3:done", "4:done"]);
    expect(await states("cutover")).toEqual(["1:restored", "2:done", "3:done", "4:done"]);
    expect(await cutoverStep(db.target, "_pgferry", `pgferry_${db.name}`)).toBe(0);
    expect(await cutoverStep(db.target, "_pgferry", `pgferry_${db.name}`, "rollback")).toBe(5);
  });

  it("puts the frozen roles back when a step fails, records the failure, and resumes on a re-run", async () => {
    const cfg = config();
    const forward = pair.start(cfg);
    await streaming(forward, 120_000);
    await waitFor(difference, { description: "the old side's writes carried forward", until: (d) => d === null, timeoutMs: 60_000, failIf: pipelineFailed(forward) });
    // One old role had a setting of its own before: it gets exactly that back.
    await db.source.query(`ALTER ROLE ${ROLES.old[1]} IN DATABASE ${db.name} SET default_transaction_read_only = off`);

    // The forward pipeline stopped, with a change it has not applied: step 2 times out.
    await pair.stopAll();
    await db.source.query("UPDATE organizations SET name = name || ' (again)' WHERE id = 4");
    const timedOut = await cutover(procedureOptions(cfg, { timeoutMs: 1000 }).options);
    expect(timedOut).toMatchObject({ ok: false, failed: { step: 2, name: "wait-forward" } });
    expect(timedOut.failed?.cause).toMatch(/^the forward pipeline did not catch up within 1 s: applied through \S+, the old database's WAL at \S+, \d+ bytes behind/);
    expect(timedOut.failed?.hint).toMatch(/start pgferry run|pgferry status/);
    expect(await readOnlySettings(db.source, ROLES.old)).toEqual([null, "off"]);
    expect(await states("cutover")).toEqual(["1:restored", "2:failed"]);
    const restarted = pair.start(cfg);
    await streaming(restarted, 120_000);
    await waitFor(difference, { description: "the change carried forward", until: (d) => d === null, timeoutMs: 60_000, failIf: pipelineFailed(restarted) });

    // A row changed on the new side only: verify (step 3) finds it.
    const { name } = await one<{ name: string }>(db.target, "SELECT name FROM shared_services.organizations WHERE id = 3");
    await db.target.query("UPDATE shared_services.organizations SET name = 'drifted' WHERE id = 3");

    // A dry run changes nothing and says where it would fail.
    const dry = await cutover(procedureOptions(cfg, { dryRun: true }).options);
    expect(dry).toMatchObject({ ok: false, dryRun: true, failed: { step: 3, name: "sequences-verify" } });
    expect(dry.events.filter((e) => e.event === "planned").map((e) => e.step)).toEqual([1, 2, 4]);
    expect(await readOnlySettings(db.source, ROLES.old)).toEqual([null, "off"]);

    const { events, options } = procedureOptions(cfg);
    const failed = await cutover(options);
    expect(failed).toMatchObject({ ok: false, failed: { step: 3, name: "sequences-verify" } });
    expect(failed.failed?.cause).toMatch(/verify: 1 of \d+ table\(s\) differ.*shared_services\.organizations \(0 missing, 0 extra, 1 different\)/);
    expect(events.map((e) => `${e.step}:${e.event}`)).toEqual(["1:started", "1:done", "2:started", "2:done", "3:started", "3:failed", "1:restored"]);
    expect(await readOnlySettings(db.source, ROLES.old)).toEqual([null, "off"]);
    expect(await states("cutover")).toEqual(["1:restored", "2:done", "3:failed"]);
    expect(await cutoverStep(db.target, "_pgferry", `pgferry_${db.name}`)).toBe(3);
    const { error } = await one<{ error: string }>(db.target, "SELECT detail->>'error' AS error FROM _pgferry.cutover_steps WHERE operation = 'cutover' AND step = 3");
    expect(error).toMatch(/verify/);

    // Fixed, run again: the freeze was undone, so every step runs again, and the rollback's freeze of the new roles is put back.
    await db.target.query("UPDATE shared_services.organizations SET name = $1 WHERE id = 3", [name]);
    const resumed = procedureOptions(cfg);
    const done = await cutover(resumed.options);
    expect(done.failed).toBeUndefined();
    expect(resumed.events.filter((e) => e.event === "done").map((e) => e.step)).toEqual([1, 2, 3, 4]);
    expect(resumed.events.at(-1)?.message).toMatch(/put back .*\(rollback step 1\).*reverse pipeline: NOT running/);
    expect(await readOnlySettings(db.source, ROLES.old)).toEqual(["on", "on"]);
    expect(await readOnlySettings(db.target, ROLES.new)).toEqual([null, null]);
    expect(await states("cutover")).toEqual(["1:done", "2:done", "3:done", "4:done"]);
    expect(await cutoverStep(db.target, "_pgferry", `pgferry_${db.name}`)).toBe(5);
  });

  it("runs as pgferry rollback from the command line, with --dry-run and --timeout", async () => {
    const file = await writeConfigFile(configText());
    const run = async (args: string[]) => {
      let out = "";
      let err = "";
      const sink = (write: (text: string) => void) => new Writable({ write(chunk: Buffer, _e, cb) { write(chunk.toString()); cb(); } });
      const code = await main(args, { stdout: sink((t) => { out += t; }), stderr: sink((t) => { err += t; }), env: env() });
      return { code, out, err };
    };
    const bad = await run(["rollback", "--config", file, "--timeout", "soon"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--timeout takes a duration/);

    const dry = await run(["rollback", "--config", file, "--dry-run", "--timeout", "5s"]);
    expect(dry.err).toBe("");
    expect(dry.code).toBe(0);
    expect(dry.out).toMatch(/\[1\/4\] rollback freeze-new: dry run: would set default_transaction_read_only = on for app_new_web_\w+ \(was unset\)/);
    expect(dry.out).toMatch(/\[4\/4\] rollback unfreeze-old: dry run: would put back/);
    expect(await readOnlySettings(db.target, ROLES.new)).toEqual([null, null]);
    expect(await readOnlySettings(db.source, ROLES.old)).toEqual(["on", "on"]);

    // `pgferry cutover` is the same procedure the other way round; its dry run plans the freeze of the old roles.
    const cutoverDry = await run(["cutover", "--config", file, "--dry-run", "--timeout", "5s"]);
    expect(cutoverDry.err).toBe("");
    expect(cutoverDry.out).toMatch(/\[1\/4\] cutover /);
    const mixed = await run(["cutover", "--config", file, "--dry-run", "--json"]);
    expect(mixed.code).toBe(2);
    expect(mixed.err).toMatch(/--json goes with --check/);
  });
});
