/**
 * Checks, before anything is created, that both databases can do what the pipeline needs, and
 * compiles the plan against their live catalogs. Every problem is collected and reported at once.
 */
import type pg from "pg";
import type { Config } from "../config/index.js";
import { PgferryError } from "../errors.js";
import { loadHooks } from "../transform/codeHook.js";
import { loadPlan } from "../plan/loadPlan.js";
import type { TablePlan } from "../plan/plan.js";
import { snapshotSelect } from "../plan/snapshotSql.js";
import { checkAccess } from "./accessChecks.js";
import { findPoolers } from "./poolerCheck.js";
import { checkTargetHazards } from "./targetHazards.js";

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

export async function preflight(config: Config, source: pg.Pool, target: pg.Pool): Promise<PreflightResult> {
  const problems: string[] = [];
  if (await findPoolers(config, problems)) throw new PreflightError(problems);
  const [slotExists, , { plans, problems: planProblems }] = await Promise.all([
    checkSource(source, config, problems),
    checkTarget(target, problems),
    loadPlan({ mappings: config.tables, snapshotFormat: config.snapshot.format }, source, target),
  ]);
  problems.push(...planProblems);
  await checkAccess(config, source, target, planProblems.length === 0 ? plans : null, problems);
  if (planProblems.length === 0) await checkExpressions(source, plans, problems);
  if (planProblems.length === 0) await checkTargetHazards(target, source, plans, problems);
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
