/**
 * `pgferry cutover` and `pgferry rollback` (docs/cutover.md, "Cutover and rollback"): the final switch
 * as four resumable steps, each recorded in the state schema on the new database
 * (state/cutoverSteps.ts) and reported as it starts and ends.
 *
 * cutover:  1 freeze the old side's roles  2 wait for the forward pipeline to apply the old WAL
 *           3 sync sequences forward, verify  4 restore what a rollback froze, mark done, report the reverse
 * rollback: 1 freeze the new side's roles  2 wait for the reverse pipeline to apply the new WAL
 *           3 sync sequences back  4 restore what the cutover froze, mark done
 *
 * A freeze is `ALTER ROLE r IN DATABASE d SET default_transaction_read_only = on` (the database's own
 * setting for the role, which wins over the role's and the database's) and the end of the role's
 * sessions there, so that they reconnect read-only; the previous setting is recorded first, so any
 * later run can put it back. A step that fails puts back what its operation froze, is recorded as
 * failed, and ends the run. A re-run skips the steps done in a row from the first and runs the rest:
 * once a freeze has been undone, everything after it is done again.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { Config } from "../config/index.js";
import { cutoverSettings } from "../config/schema.js";
import type { Logger } from "../log/logger.js";
import { PgferryError } from "../errors.js";
import { formatLsn, parseLsn } from "../source/lsn.js";
import { commitFence } from "../source/walFence.js";
import { isMissingRelation } from "../sql/missingRelation.js";
import { withPooledClient } from "../sql/pools.js";
import { quoteIdent, quoteLiteral } from "../sql/quote.js";
import { CUTOVER_STEP_COUNT, CutoverStepStore, type CutoverOperation, type CutoverStepRecord } from "../state/cutoverSteps.js";
import { postgresStores } from "../state/postgresStores.js";
import { directionRun, outcome, recordOutcome, refuseHiddenRows } from "../verify/directions.js";
import { verify } from "../verify/verifier.js";
import { syncSequences } from "./sequences.js";
import type { SequenceChange } from "./types.js";

export { cutoverStep } from "../state/cutoverSteps.js";
export type { CutoverOperation } from "../state/cutoverSteps.js";

/** What a run reports of a step, as it happens (printed by the command, logged, and handed to onStep). */
export interface CutoverStep {
  operation: CutoverOperation;
  step: number;
  name: string;
  /**
   * `progress`: a running step still at work (every 5 s of a wait); `skipped`: done by an earlier run;
   * `restored`: a freeze put back after a failure; `planned`: what --dry-run found.
   */
  event: "started" | "progress" | "done" | "skipped" | "failed" | "restored" | "planned";
  message: string;
  hint?: string;
}

/** Where the reverse pipeline stands (its slot on the new database, its state on the old one). */
export interface ReverseStatus {
  configured: boolean;
  /** A `pgferry run --direction reverse` is reading its slot. */
  running: boolean;
  tablesReady: number;
  tables: number;
  message: string;
}

export interface CutoverResult {
  operation: CutoverOperation;
  ok: boolean;
  dryRun: boolean;
  /** Every step was done by an earlier run: nothing was done now. */
  alreadyDone: boolean;
  failed?: { step: number; name: string; cause: string; hint?: string };
  events: CutoverStep[];
  sequences: SequenceChange[];
  reverse?: ReverseStatus;
}

export interface CutoverOptions {
  config: Config;
  old: pg.Pool;
  new: pg.Pool;
  dryRun: boolean;
  log: Logger;
  /** How long step 2 waits for the pipeline to catch up. */
  timeoutMs: number;
  onStep?(step: CutoverStep): void;
  /** Aborting fails the running step (its freeze is put back), as a timeout does. */
  signal?: AbortSignal;
}

type Side = "old" | "new";

interface FrozenRole { role: string; previous: string | null }

/** What a freeze step records: enough for any later run to put the roles back. */
interface FreezeDetail { side: Side; database: string; roles: FrozenRole[]; frozen: boolean; restored?: boolean }

interface Run extends CutoverOptions {
  operation: CutoverOperation;
  store: CutoverStepStore;
  records: CutoverStepRecord[];
  events: CutoverStep[];
  sequences: SequenceChange[];
  reverse?: ReverseStatus;
}

interface StepDef {
  name: string;
  title: string;
  /** Does the step (or, with dryRun, says what it would do); resolves to its one-line outcome. */
  run(run: Run, step: number): Promise<string>;
}

const FREEZE_SETTING = "default_transaction_read_only";
const POLL_MS = 200;
const PROGRESS_EVERY_MS = 5_000;
const TERMINATE_WAIT_MS = 5_000;

const opposite = (operation: CutoverOperation): CutoverOperation => (operation === "cutover" ? "rollback" : "cutover");
const pool = (run: Run, side: Side): pg.Pool => (side === "old" ? run.old : run.new);

function freezeOf(record: CutoverStepRecord | undefined): FreezeDetail | undefined {
  const detail = record?.detail as Partial<FreezeDetail> | undefined;
  return detail?.roles && detail.database && detail.side ? (detail as FreezeDetail) : undefined;
}

/** A freeze whose roles are still read-only by pgferry's doing. */
const inEffect = (freeze: FreezeDetail | undefined): freeze is FreezeDetail => freeze !== undefined && freeze.frozen && freeze.restored !== true;

// --- freezing and restoring roles ----------------------------------------------------------------------------

const ROLES_SQL = `
SELECT w.name AS role, r.oid IS NOT NULL AS found, coalesce(r.rolname = current_user, false) AS self, current_database() AS database,
       (SELECT substr(c, length('${FREEZE_SETTING}=') + 1) FROM pg_db_role_setting s, unnest(s.setconfig) AS c
        WHERE s.setrole = r.oid AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND c LIKE '${FREEZE_SETTING}=%') AS previous
FROM unnest($1::text[]) WITH ORDINALITY AS w(name, n) LEFT JOIN pg_roles r ON r.rolname = w.name ORDER BY w.n`;

/** The roles' client sessions in this database, pgferry's own and this one left out. */
const SESSIONS_SQL = `
FROM pg_stat_activity WHERE datname = current_database() AND usename = ANY($1::text[]) AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND coalesce(application_name, '') NOT LIKE 'pgferry%'`;

function privilegeHint(side: Side, error: unknown): unknown {
  if ((error as { code?: string }).code !== "42501") return error;
  return new PgferryError("privilege", `the ${side} database refused to change or end the listed roles: ${(error as Error).message}`, {
    cause: error,
    hint: `the role of ${side === "old" ? "source.url" : "target.url"} needs CREATEROLE (PostgreSQL 16+: with ADMIN OPTION on each listed role) and membership in pg_signal_backend; or run the command with an administrator's URL in that variable`,
  });
}

/** Ends the roles' sessions (waiting for each to exit); returns how many ended. */
async function endSessions(db: pg.Pool, roles: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ ended: number }>(`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, ${TERMINATE_WAIT_MS}))::int AS ended ${SESSIONS_SQL}`, [roles]);
  return rows[0]?.ended ?? 0;
}

async function setRoles(db: pg.Pool, database: string, roles: readonly FrozenRole[], value: (role: FrozenRole) => string | null): Promise<void> {
  await withPooledClient(db, async (client) => {
    await client.query("BEGIN");
    try {
      for (const role of roles) {
        const to = value(role);
        const target = `ALTER ROLE ${quoteIdent(role.role)} IN DATABASE ${quoteIdent(database)}`;
        await client.query(to === null ? `${target} RESET ${FREEZE_SETTING}` : `${target} SET ${FREEZE_SETTING} = ${quoteLiteral(to)}`);
      }
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
  });
}

const describeRoles = (roles: readonly FrozenRole[]) => roles.map((r) => `${r.role} (was ${r.previous ?? "unset"})`).join(", ");

/** Step 1: makes the configured roles of `side` read-only in its database and ends their sessions. */
async function freeze(run: Run, step: number, side: Side): Promise<string> {
  const roles = cutoverSettings(run.config).freezeRoles[side];
  const key = `cutover.freezeRoles.${side}`;
  if (roles.length === 0) return `no roles to freeze (${key} is empty): pgferry does not stop writes on the ${side} project; stop them yourself`;
  const db = pool(run, side);
  const { rows } = await db.query<{ role: string; found: boolean; self: boolean; database: string; previous: string | null }>(ROLES_SQL, [roles]);
  const missing = rows.filter((r) => !r.found).map((r) => r.role);
  if (missing.length > 0) throw new PgferryError("config", `${key}: no role ${missing.join(", ")} on the ${side} database`, { hint: `fix ${key}` });
  const self = rows.find((r) => r.self);
  if (self) throw new PgferryError("config", `${key}: ${self.role} is the role this command connects as; freezing it would stop pgferry too`, { hint: `list only the application's roles in ${key}` });
  // A freeze still in effect (a run that stopped after it, or an earlier round) knows the settings from before it.
  const recorded = run.records.find((r) => r.step === step);
  const earlier = inEffect(freezeOf(recorded)) ? freezeOf(recorded) : undefined;
  const database = rows[0]!.database;
  const frozen: FrozenRole[] = rows.map((r) => ({ role: r.role, previous: earlier?.roles.find((e) => e.role === r.role)?.previous ?? r.previous }));
  if (run.dryRun) {
    const { rows: sessions } = await db.query<{ n: number }>(`SELECT count(*)::int AS n ${SESSIONS_SQL}`, [roles]);
    return `would set ${FREEZE_SETTING} = on for ${describeRoles(frozen)} in database ${database} and end their ${sessions[0]?.n ?? 0} session(s)`;
  }
  // Recorded as frozen before the change: a run that dies right after it still knows what to put back
  // (putting back a freeze that did not happen sets what is already there).
  const detail: FreezeDetail = { side, database, roles: frozen, frozen: true, restored: false };
  await run.store.note(run.operation, step, { ...detail });
  try {
    try {
      await setRoles(db, database, frozen, () => "on");
    } catch (error) {
      await run.store.note(run.operation, step, { frozen: earlier !== undefined }); // rolled back: nothing changed
      throw error;
    }
    let ended = await endSessions(db, roles);
    const { rows: left } = await db.query<{ n: number }>(`SELECT count(*)::int AS n ${SESSIONS_SQL}`, [roles]);
    if ((left[0]?.n ?? 0) > 0) ended += await endSessions(db, roles); // a session that connected while the freeze committed
    const { rows: still } = await db.query<{ n: number }>(`SELECT count(*)::int AS n ${SESSIONS_SQL}`, [roles]);
    if ((still[0]?.n ?? 0) > 0) throw new PgferryError("state", `${still[0]!.n} session(s) of ${roles.join(", ")} on the ${side} database did not end within ${TERMINATE_WAIT_MS / 1000} s`);
    await run.store.note(run.operation, step, { sessionsEnded: ended });
    return `${FREEZE_SETTING} = on for ${describeRoles(frozen)} in database ${database}; ${ended} session(s) ended`;
  } catch (error) {
    throw privilegeHint(side, error);
  }
}

/**
 * Puts back the settings a freeze recorded (step 1 of `operation`), if it is still in effect, and ends
 * the roles' sessions: they were opened read-only and would stay so until they reconnect.
 */
async function restoreFreeze(run: Run, operation: CutoverOperation): Promise<string | undefined> {
  const records = operation === run.operation ? run.records : await run.store.list(operation);
  const record = records.find((r) => r.step === 1);
  const freeze = freezeOf(record);
  if (!record || !inEffect(freeze)) return undefined;
  const db = pool(run, freeze.side);
  if (run.dryRun) return `would put back ${describeRoles(freeze.roles)} on the ${freeze.side} database and end their sessions`;
  try {
    await setRoles(db, freeze.database, freeze.roles, (r) => r.previous);
  } catch (error) {
    throw privilegeHint(freeze.side, error);
  }
  if (record.state === "done") await run.store.markRestored(operation, 1, { restored: true });
  else await run.store.note(operation, 1, { restored: true });
  const put = `${FREEZE_SETTING} put back for ${describeRoles(freeze.roles)} on the ${freeze.side} database (${operation} step 1)`;
  try {
    return `${put}; ${await endSessions(db, freeze.roles.map((r) => r.role))} session(s) ended to reconnect writable`;
  } catch (error) {
    return `${put}; their sessions opened meanwhile could NOT be ended (${(error as Error).message}): they stay read-only until they reconnect`;
  }
}

// --- waiting for a pipeline ------------------------------------------------------------------------------------

interface Pipeline {
  label: string;
  /** The database it reads (the WAL and the slot). */
  source: Side;
  slot: string;
  /** Its state schema, in the database it writes. */
  stateSchema: string;
  run: string;
}

function pipelineOf(config: Config, operation: CutoverOperation): Pipeline {
  if (operation === "cutover") return { label: "forward", source: "old", slot: config.source.slot, stateSchema: config.target.stateSchema, run: "pgferry run" };
  const reverse = reverseSection(config);
  return { label: "reverse", source: "new", slot: reverse.slot, stateSchema: reverse.stateSchema, run: "pgferry run --direction reverse" };
}

export function reverseSection(config: Config): NonNullable<Config["reverse"]> {
  if (!config.reverse) {
    throw new PgferryError("config", "reverse: the config has no reverse section; a rollback needs the reverse pipeline to have carried the new project's writes back", {
      hint: "add a reverse section and run pgferry run --direction reverse before the new project takes writes (docs/reverse.md)",
    });
  }
  return config.reverse;
}

/** How far the pipeline has applied: the later of its checkpoint (end of the last commit applied) and its slot's confirmed flush. */
async function applied(run: Run, pipeline: Pipeline): Promise<{ lsn: bigint | null; active: boolean; slot: boolean }> {
  const stateDb = pool(run, pipeline.source === "old" ? "new" : "old");
  const [{ rows: slots }, checkpoint] = await Promise.all([
    pool(run, pipeline.source).query<{ lsn: string | null; active: boolean }>("SELECT confirmed_flush_lsn::text AS lsn, active FROM pg_replication_slots WHERE slot_name = $1", [pipeline.slot]),
    stateDb
      .query<{ lsn: string }>(`SELECT end_lsn::text AS lsn FROM ${quoteIdent(pipeline.stateSchema)}.pipelines WHERE pipeline = $1`, [pipeline.slot])
      .then((r) => r.rows[0]?.lsn ?? null, (error: unknown) => {
        if (isMissingRelation(error)) return null;
        throw error;
      }),
  ]);
  const positions = [slots[0]?.lsn ?? null, checkpoint].filter((l): l is string => l !== null).map(parseLsn);
  return { lsn: positions.length === 0 ? null : positions.reduce((a, b) => (a > b ? a : b)), active: slots[0]?.active === true, slot: slots.length > 0 };
}

/** Where step 2 waits to: the position after a fence (source/walFence.ts); a dry run writes nothing and reads the insert position. */
async function fencePosition(db: pg.Pool, dryRun: boolean, operation: CutoverOperation): Promise<bigint> {
  if (dryRun) {
    const { rows } = await db.query<{ lsn: string }>("SELECT pg_current_wal_insert_lsn()::text AS lsn");
    return parseLsn(rows[0]!.lsn);
  }
  return parseLsn(await withPooledClient(db, (client) => commitFence(client, operation)));
}

/** Step 2: waits until the pipeline has applied every commit its source had made when the step began (after the freeze). */
async function waitCaughtUp(run: Run, step: number): Promise<string> {
  const pipeline = pipelineOf(run.config, run.operation);
  const target = await fencePosition(pool(run, pipeline.source), run.dryRun, run.operation);
  const started = Date.now();
  let reported = started;
  for (;;) {
    const now = await applied(run, pipeline);
    if (now.lsn === null) {
      throw new PgferryError("state", `the ${pipeline.label} pipeline has neither a slot ${pipeline.slot} on the ${pipeline.source} database nor a checkpoint`, { hint: `start ${pipeline.run}` });
    }
    const behind = target > now.lsn ? target - now.lsn : 0n;
    const where = `applied through ${formatLsn(now.lsn)}, the ${pipeline.source} database's WAL at ${formatLsn(target)}`;
    if (run.dryRun) {
      return `would wait up to ${run.timeoutMs / 1000} s for the ${pipeline.label} pipeline to apply the ${pipeline.source} WAL (now ${where}, ${behind} bytes behind; slot ${now.active ? "active" : "NOT active"})`;
    }
    if (behind === 0n) {
      await run.store.note(run.operation, step, { walLsn: formatLsn(target), appliedLsn: formatLsn(now.lsn) });
      return `${where}: caught up in ${((Date.now() - started) / 1000).toFixed(1)} s`;
    }
    const inactive = now.active ? "" : ` (no ${pipeline.run} is reading slot ${pipeline.slot})`;
    if (run.signal?.aborted) throw new PgferryError("state", `interrupted while waiting for the ${pipeline.label} pipeline (${where})`);
    if (Date.now() - started >= run.timeoutMs) {
      throw new PgferryError("state", `the ${pipeline.label} pipeline did not catch up within ${run.timeoutMs / 1000} s: ${where}, ${behind} bytes behind${inactive}`, {
        hint: now.active ? "look at its lag (pgferry status), then run the command again (or with a longer --timeout)" : `start ${pipeline.run}, then run the command again`,
      });
    }
    if (Date.now() - reported >= PROGRESS_EVERY_MS) {
      reported = Date.now();
      const waited = Math.round((reported - started) / 1000);
      emit(run, { operation: run.operation, step, name: STEPS[run.operation][step - 1]!.name, event: "progress", message: `waiting ${waited} s of ${run.timeoutMs / 1000} s: ${where}, ${behind} bytes behind${inactive}` });
    }
    await sleep(Math.min(POLL_MS, Math.max(1, run.timeoutMs - (Date.now() - started))));
  }
}

// --- sequences, verify, the reverse ----------------------------------------------------------------------------

function describeSequences(changes: readonly SequenceChange[], dryRun: boolean): string {
  if (changes.length === 0) return "every sequence already ahead";
  const shown = changes.slice(0, 5).map((c) => `${c.sequence} ${c.from} -> ${c.to}`).join(", ");
  return `${dryRun ? "would move" : "moved"} ${changes.length} sequence(s): ${shown}${changes.length > 5 ? ", ..." : ""}`;
}

async function sequences(run: Run, step: number, direction: "forward" | "reverse"): Promise<string> {
  const changes = await syncSequences({ config: run.config, direction, old: run.old, new: run.new, dryRun: run.dryRun, log: run.log });
  run.sequences.push(...changes);
  if (!run.dryRun) await run.store.note(run.operation, step, { sequences: changes.map((c) => ({ sequence: c.sequence, from: String(c.from), to: String(c.to) })) });
  return describeSequences(changes, run.dryRun);
}

/** Step 3 of the cutover: the new side's sequences past the old side's, then the forward comparison (a difference fails). */
async function sequencesAndVerify(run: Run, step: number): Promise<string> {
  const moved = await sequences(run, step, "forward");
  const { config } = run;
  const pools = { old: run.old, new: run.new };
  const forward = await directionRun(config, "forward", pools);
  await refuseHiddenRows(config, pools);
  const reports = await verify(forward.plans, { source: forward.source, target: forward.target, examples: 0, rechecks: 3, recheckDelayMs: 1000 });
  const { compared, different } = outcome(reports);
  if (!run.dryRun) await recordOutcome(config, pools, "forward", reports);
  if (different.length > 0) {
    const tables = different.map((r) => `${r.target} (${r.missing} missing, ${r.extra} extra, ${r.changed} different)`).join("; ");
    throw new PgferryError("state", `verify: ${different.length} of ${compared.length} table(s) differ from the mapped old project: ${tables}`, {
      hint: "pgferry verify lists the keys; pgferry resync <table> repairs a table while streaming; then run the command again",
    });
  }
  return `${moved}; verify: ${compared.length} table(s) equal${reports.length > compared.length ? `, ${reports.length - compared.length} skipped (hooks)` : ""}`;
}

/** The reverse pipeline as the old project's fallback needs it: configured, its tables ready, its slot read. */
export async function reverseStatus(config: Config, pools: { old: pg.Pool; new: pg.Pool }): Promise<ReverseStatus> {
  if (!config.reverse) {
    return { configured: false, running: false, tablesReady: 0, tables: 0, message: "reverse pipeline: not configured (no reverse section): the old project receives none of the new project's writes, and pgferry rollback cannot be used" };
  }
  const { slot, stateSchema } = config.reverse;
  const [{ rows: slots }, tables] = await Promise.all([
    pools.new.query<{ active: boolean }>("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [slot]),
    pools.old
      .query<{ ready: number; total: number }>(`SELECT count(*) FILTER (WHERE state = 'ready')::int AS ready, count(*)::int AS total FROM ${quoteIdent(stateSchema)}.tables WHERE pipeline = $1`, [slot])
      .then((r) => r.rows[0] ?? { ready: 0, total: 0 }, () => ({ ready: 0, total: 0 })),
  ]);
  const running = slots[0]?.active === true;
  const state = tables.total === 0 ? "no state on the old database yet" : `${tables.ready} of ${tables.total} table(s) ready`;
  const message = running
    ? `reverse pipeline: running (slot ${slot} on the new database is being read; ${state}): keep pgferry run --direction reverse running while the old project is the fallback`
    : `reverse pipeline: NOT running (${state}): start pgferry run --direction reverse so that the new project's writes reach the old one (pgferry rollback needs them)`;
  return { configured: true, running, tablesReady: tables.ready, tables: tables.total, message };
}

// --- the steps and the runner ------------------------------------------------------------------------------------

const STEPS: Record<CutoverOperation, readonly StepDef[]> = {
  cutover: [
    { name: "freeze-old", title: "freeze writes on the old project", run: (run, step) => freeze(run, step, "old") },
    { name: "wait-forward", title: "wait until the forward pipeline has applied the old project's WAL", run: waitCaughtUp },
    { name: "sequences-verify", title: "sync sequences forward, then verify", run: sequencesAndVerify },
    {
      name: "finish", title: "mark the cutover done; report the reverse pipeline",
      async run(run) {
        const restored = await restoreFreeze(run, "rollback");
        run.reverse = await reverseStatus(run.config, run);
        return [restored, run.reverse.message].filter(Boolean).join("; ");
      },
    },
  ],
  rollback: [
    { name: "freeze-new", title: "freeze writes on the new project", run: (run, step) => freeze(run, step, "new") },
    { name: "wait-reverse", title: "wait until the reverse pipeline has applied the new project's WAL", run: waitCaughtUp },
    { name: "sequences-back", title: "sync sequences back (old past new)", run: (run, step) => sequences(run, step, "reverse") },
    {
      name: "unfreeze-old", title: "unfreeze the old project; mark the rollback done",
      async run(run) {
        return (await restoreFreeze(run, "cutover")) ?? "nothing to unfreeze on the old project (no cutover freeze in effect)";
      },
    },
  ],
};

function emit(run: Run, event: CutoverStep): void {
  run.events.push(event);
  const level = event.event === "failed" ? "error" : event.event === "restored" ? "warn" : "info";
  run.log[level]({ operation: event.operation, step: event.step, name: event.name, event: event.event }, event.message);
  run.onStep?.(event);
}

/** One lock per pipeline on the new database: two runs of cutover/rollback never interleave. */
async function lock(db: pg.Pool, pipeline: string): Promise<pg.PoolClient> {
  const client = await db.connect();
  client.on("error", () => undefined); // a connection lost while held: the lock goes with it, and the next query fails
  const { rows } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtext('pgferry:cutover'), hashtext($1)) AS locked", [pipeline]);
  if (rows[0]?.locked) return client;
  client.release();
  throw new PgferryError("state", `another pgferry cutover or rollback of pipeline ${pipeline} is running`, { hint: "wait for it to end, then run the command again" });
}

/**
 * This operation's steps so far. Once it was done, a run of the other operation since undid it, and
 * this run starts a new round (a freeze of the last round still in effect keeps its recorded settings).
 */
async function currentRound(run: Run): Promise<{ records: CutoverStepRecord[]; alreadyDone: boolean }> {
  const all = await run.store.list();
  const own = all.filter((r) => r.operation === run.operation);
  const last = own.find((r) => r.step === CUTOVER_STEP_COUNT && r.state === "done");
  if (!last) return { records: own, alreadyDone: false };
  const since = (last.finishedAt ?? last.startedAt).getTime();
  if (!all.some((r) => r.operation === opposite(run.operation) && r.startedAt.getTime() > since)) return { records: own, alreadyDone: true };
  const freeze = own.find((r) => r.step === 1);
  const kept = inEffect(freezeOf(freeze)) ? [{ ...freeze!, state: "running" as const }] : [];
  if (!run.dryRun) {
    await run.store.clear(run.operation);
    for (const record of kept) await run.store.start(run.operation, 1, record.name, record.detail);
  }
  return { records: kept, alreadyDone: false };
}

async function operate(operation: CutoverOperation, options: CutoverOptions): Promise<CutoverResult> {
  const { config } = options;
  if (operation === "rollback") reverseSection(config);
  const pipeline = config.source.slot;
  const store = new CutoverStepStore({ pool: options.new, schema: config.target.stateSchema, pipeline });
  const run: Run = { ...options, operation, store, records: [], events: [], sequences: [] };
  const result = (ok: boolean, alreadyDone: boolean, failed?: CutoverResult["failed"]): CutoverResult =>
    ({ operation, ok, dryRun: options.dryRun, alreadyDone, failed, events: run.events, sequences: run.sequences, reverse: run.reverse });
  const held = options.dryRun ? undefined : await lock(options.new, pipeline);
  try {
    if (!options.dryRun) await postgresStores({ pool: options.new, schema: config.target.stateSchema, pipeline }).checkpoints.migrate();
    const round = await currentRound(run);
    run.records = round.records;
    const steps = STEPS[operation];
    // Steps done in a row from the first are skipped; everything from the first other one runs (again).
    let first = 0;
    while (first < steps.length && run.records.find((r) => r.step === first + 1)?.state === "done") first += 1;
    for (let i = 0; i < first; i += 1) {
      const at = run.records.find((r) => r.step === i + 1)?.finishedAt;
      emit(run, { operation, step: i + 1, name: steps[i]!.name, event: "skipped", message: `${steps[i]!.title}: done ${at ? `at ${at.toISOString()}` : "earlier"}` });
    }
    if (round.alreadyDone) {
      if (operation === "cutover") run.reverse = await reverseStatus(config, run);
      return result(true, true);
    }
    let dryRunProblem: CutoverResult["failed"];
    for (let i = first; i < steps.length; i += 1) {
      const def = steps[i]!;
      const step = i + 1;
      if (!options.dryRun) await store.start(operation, step, def.name);
      emit(run, { operation, step, name: def.name, event: "started", message: def.title });
      try {
        if (options.signal?.aborted) throw new PgferryError("state", "interrupted (a signal) before the step ran", { hint: "run the command again to resume" });
        const message = await def.run(run, step);
        if (!options.dryRun) await store.finish(operation, step, "done", { outcome: message });
        emit(run, { operation, step, name: def.name, event: options.dryRun ? "planned" : "done", message });
      } catch (error) {
        const cause = error instanceof Error ? error.message : String(error);
        const hint = error instanceof PgferryError ? error.hint : undefined;
        emit(run, { operation, step, name: def.name, event: "failed", message: cause, hint });
        if (options.dryRun) {
          dryRunProblem ??= { step, name: def.name, cause, hint };
          continue;
        }
        await store.finish(operation, step, "failed", { error: cause, hint: hint ?? null }).catch((e: unknown) => run.log.error({ err: e }, "the failure could not be recorded"));
        run.records = await store.list(operation);
        const restored = await restoreFreeze(run, operation).catch((e: unknown) => `the freeze could NOT be put back: ${e instanceof Error ? e.message : String(e)}`);
        if (restored) emit(run, { operation, step: 1, name: steps[0]!.name, event: "restored", message: restored });
        return result(false, false, { step, name: def.name, cause, hint });
      }
    }
    return result(dryRunProblem === undefined, false, dryRunProblem);
  } finally {
    if (held) {
      await held.query("SELECT pg_advisory_unlock(hashtext('pgferry:cutover'), hashtext($1))", [pipeline]).catch(() => undefined);
      held.release();
    }
  }
}

/** The switch from the old project to the new one (steps above). Step failures are in the result; a bad config or a held lock throw. */
export function cutover(options: CutoverOptions): Promise<CutoverResult> {
  return operate("cutover", options);
}

/** The way back: the new project frozen, its writes carried back, the old project unfrozen. Needs a `reverse` section. */
export function rollback(options: CutoverOptions): Promise<CutoverResult> {
  return operate("rollback", options);
}
