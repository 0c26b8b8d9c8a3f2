/**
 * Checks, before anything is created, that both databases can do what the pipeline needs, and
 * compiles the plan against their live catalogs. Every problem is collected and reported at once.
 */
import type pg from "pg";
import type { Config } from "../config/index.js";
import { oppositeOf, type Direction } from "../config/directions.js";
import { quoteIdent } from "../sql/quote.js";
import { PgferryError } from "../errors.js";
import { loadHooks } from "../transform/codeHook.js";
import { compileReversePlan, loadPlan } from "../plan/loadPlan.js";
import type { TablePlan } from "../plan/plan.js";
import { snapshotSelect } from "../plan/snapshotSql.js";
import { checkAccess, checkOriginPrivileges } from "./accessChecks.js";
import { findPoolers } from "./poolerCheck.js";
import { checkTargetHazards } from "./targetHazards.js";
import { checkKeyRanges } from "./keyRanges.js";
import { binaryStream } from "./streamFormat.js";
import { isMissingRelation } from "../sql/missingRelation.js";

export interface PreflightResult {
  plans: TablePlan[];
  slotExists: boolean;
}

export class PreflightError extends PgferryError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super("preflight", `preflight found ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join("\n")}`, {
      hint: "fix the listed problems; nothing was created",
    });
    this.name = "PreflightError";
    this.problems = problems;
  }
}

interface SourceServer {
  wal_level: string; can_replicate: boolean; max_slots: number; used_slots: number; max_senders: number; used_senders: number;
  slot_exists: boolean; slot_plugin: string | null; slot_database: string | null; slot_wal_status: string | null; database: string; server_version_num: number;
}

async function checkSource(source: pg.Pool, config: Config, problems: string[]): Promise<boolean> {
  const { rows } = await source.query<SourceServer>(
    `SELECT current_setting('wal_level') AS wal_level,
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate,
            current_setting('max_replication_slots')::int AS max_slots,
            (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
            current_setting('max_wal_senders')::int AS max_senders,
            (SELECT count(*)::int FROM pg_stat_replication) AS used_senders,
            s.slot_name IS NOT NULL AS slot_exists, s.plugin AS slot_plugin, s.database AS slot_database, s.wal_status AS slot_wal_status,
            current_database() AS database, current_setting('server_version_num')::int AS server_version_num
     FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
    [config.source.slot],
  );
  const s = rows[0]!;
  if (s.server_version_num < 140000) problems.push(`source: PostgreSQL ${s.server_version_num} is too old; pgferry needs 14 or later`);
  if (s.wal_level !== "logical") {
    problems.push(`source: wal_level is '${s.wal_level}', must be 'logical' (ALTER SYSTEM SET wal_level = logical; then restart the server)`);
  }
  if (!s.can_replicate) problems.push("source: the role has neither REPLICATION nor SUPERUSER (ALTER ROLE ... REPLICATION)");
  if (!s.slot_exists && s.used_slots + 2 > s.max_slots) {
    problems.push(`source: max_replication_slots = ${s.max_slots} and ${s.used_slots} are used; pgferry needs 2 free (its slot and a temporary one while copying)`);
  }
  if (s.used_senders + 2 > s.max_senders) {
    problems.push(`source: max_wal_senders = ${s.max_senders} and ${s.used_senders} are in use; pgferry needs 2`);
  }
  if (s.slot_exists && (s.slot_plugin !== "pgoutput" || s.slot_database !== s.database)) {
    problems.push(`source.slot: slot ${config.source.slot} exists but belongs to ${s.slot_database} with plugin ${s.slot_plugin}; choose another slot name`);
  }
  if (s.slot_exists && s.slot_wal_status === "lost") {
    problems.push(
      `source.slot: replication slot ${config.source.slot} was invalidated: the source removed WAL it still needed (max_slot_wal_keep_size), ` +
        "so changes since the last checkpoint are gone; recover with `pgferry slot drop` and a new `pgferry run` (a fresh snapshot)",
    );
  }
  return s.slot_exists;
}

async function checkTarget(target: pg.Pool, problems: string[]): Promise<void> {
  const { rows } = await target.query<{ can_set_role: boolean }>(
    `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
            OR has_parameter_privilege('session_replication_role', 'SET') AS can_set_role`,
  );
  if (!rows[0]?.can_set_role) {
    problems.push("target: the role may not SET session_replication_role (GRANT SET ON PARAMETER session_replication_role TO <role>)");
  }
}

export interface PreflightOptions {
  /** The reverse compiles the inverse plan (source = new database) and checks that the forward pipeline is in place. */
  direction: Direction;
  /** The config as written, both directions. */
  original: Config;
}

export async function preflight(config: Config, source: pg.Pool, target: pg.Pool, options?: PreflightOptions): Promise<PreflightResult> {
  const problems: string[] = [];
  const direction = options?.direction ?? "forward";
  const original = options?.original ?? config;
  if (await findPoolers(config, problems)) throw new PreflightError(problems);
  const loading =
    direction === "forward"
      ? loadPlan({ mappings: config.tables, snapshotFormat: config.snapshot.format, bidirectional: original.reverse !== undefined }, source, target)
      : compileReversePlan({ mappings: original.tables }, { old: target, new: source });
  const [slotExists, , { plans, problems: planProblems }] = await Promise.all([
    checkSource(source, config, problems),
    checkTarget(target, problems),
    loading,
  ]);
  problems.push(...planProblems);
  if (original.reverse) await checkBidirectional(original, direction, source, target, problems);
  if (direction === "reverse" && planProblems.length === 0) await checkKeyRanges(target, plans, problems);
  await checkAccess(config, source, target, planProblems.length === 0 ? plans : null, problems);
  if (planProblems.length === 0) await checkExpressions(source, plans, problems);
  if (planProblems.length === 0) await checkTargetHazards(target, source, plans, problems);
  if (planProblems.length === 0) {
    const { problem } = binaryStream(config.apply.format, plans);
    if (problem) problems.push(problem);
  }
  if (problems.length > 0) throw new PreflightError(problems);
  await loadHooks(plans);
  return { plans, slotExists };
}

/** Each derived column and filter is planned by the source (without reading a row), so a typo stops the start. */
async function checkExpressions(source: pg.Pool, plans: readonly TablePlan[], problems: string[]): Promise<void> {
  for (const plan of plans) {
    for (const edge of plan.edges) {
      if (!edge.evaluated) continue;
      try {
        await source.query(`EXPLAIN ${snapshotSelect(edge, plan.source)}`);
      } catch (error) {
        problems.push(`tables[${edge.index}]: the source rejects the mapping's SQL for ${plan.id} → ${edge.table.id}: ${(error as Error).message}`);
      }
    }
  }
}

/**
 * Both directions running: conflict detection reads each row's last commit time and origin, and every
 * apply session tags its writes with its origin (the opposite reader drops them). The reverse starts
 * only once the forward pipeline has copied every table: from then on the two sides are in sync and
 * the reverse carries what the new side writes.
 */
async function checkBidirectional(original: Config, direction: Direction, source: pg.Pool, target: pg.Pool, problems: string[]): Promise<void> {
  for (const [side, pool] of [["source", source], ["target", target]] as const) {
    const { rows } = await pool.query<{ on: string }>("SELECT current_setting('track_commit_timestamp') AS on");
    if (rows[0]?.on !== "on") {
      problems.push(`${side}: track_commit_timestamp is off; conflict detection between the two directions needs it (ALTER SYSTEM SET track_commit_timestamp = on; then restart the server)`);
    }
  }
  problems.push(...(await checkOriginPrivileges(target, "target")));
  if (direction !== "reverse") return;
  const forward = oppositeOf(original, "reverse")!;
  // The forward's state lives in the new database: this pipeline's source.
  const { rows } = await source
    .query<{ pending: string[] }>(
      `SELECT coalesce(array_agg(source_table ORDER BY source_table) FILTER (WHERE state <> 'ready'), '{}') AS pending, count(*) AS n
       FROM ${quoteIdent(forward.stateSchema)}.tables WHERE pipeline = $1 HAVING count(*) > 0`,
      [forward.slot],
    )
    .catch((error: unknown) => {
      if (isMissingRelation(error)) return { rows: [] };
      throw error;
    });
  if (rows.length === 0) {
    problems.push(`reverse: the forward pipeline (slot ${forward.slot}) has no state in the new database; run it first, and start the reverse once every table is copied`);
  } else if (rows[0]!.pending.length > 0) {
    problems.push(`reverse: the forward pipeline has not copied ${rows[0]!.pending.join(", ")} yet; start the reverse once every table is ready (pgferry status)`);
  }
}
