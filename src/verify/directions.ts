/**
 * A comparison of one direction of a config, as `pgferry verify`, `pgferry cutover --check --verify
 * full` and the cutover's step 3 all run it: the direction's plan (the mapping, or its inverse), a
 * refusal when row-level security would hide rows from either side, and the outcome recorded in the
 * direction's state schema (state/verificationLog.ts), which `pgferry cutover --check` reads.
 */
import type pg from "pg";
import type { Config } from "../config/schema.js";
import type { Direction } from "../config/directions.js";
import { PgferryError } from "../errors.js";
import { checkRowSecurity } from "../pipeline/accessChecks.js";
import { compileReversePlan, loadPlan } from "../plan/loadPlan.js";
import type { TablePlan } from "../plan/plan.js";
import { postgresStores } from "../state/postgresStores.js";
import { VerificationLog } from "../state/verificationLog.js";
import type { EdgeReport } from "./verifier.js";

/** The config's two databases, whichever direction reads which. */
export interface ProjectPools {
  old: pg.Pool;
  new: pg.Pool;
}

/** What one direction compares: its plan, the pools as its source and target, and entries it does not carry. */
export interface DirectionRun {
  direction: Direction;
  plans: TablePlan[];
  source: pg.Pool;
  target: pg.Pool;
  /** Forward-only entries: nothing of them goes back, so the reverse has nothing to compare. */
  skipped: EdgeReport[];
}

const listed = (problems: readonly string[]) => problems.map((p) => `  - ${p}`).join("\n");

/** The direction's plan: the mapping old → new, or its inverse new → old (docs/reverse.md). */
export async function directionRun(config: Config, direction: Direction, pools: ProjectPools): Promise<DirectionRun> {
  if (direction === "forward") {
    const { plans, problems } = await loadPlan({ mappings: config.tables, snapshotFormat: config.snapshot.format, bidirectional: config.reverse !== undefined }, pools.old, pools.new);
    if (problems.length > 0) throw new PgferryError("mapping", `the mapping does not compile:\n${listed(problems)}`, { hint: "run pgferry plan --check" });
    return { direction, plans, source: pools.old, target: pools.new, skipped: [] };
  }
  const reverse = await compileReversePlan({ mappings: config.tables, snapshotFormat: config.snapshot.format }, pools);
  if (reverse.problems.length > 0) throw new PgferryError("mapping", `the reverse mapping does not compile:\n${listed(reverse.problems)}`, { hint: "run pgferry plan --reverse" });
  const carried = new Set(reverse.mappings.map((m) => m.forwardIndex));
  const skipped = config.tables.flatMap((t, i): EdgeReport[] => {
    if (carried.has(i)) return [];
    const reason = t.reverse === false ? `forward-only: tables[${i}].reverse is false` : `forward-only: tables[${i}] has a hook and no reverse hook`;
    return [{ source: t.to, target: t.from, rows: 0, status: "skipped", reason, missing: 0, extra: 0, changed: 0, examples: [] }];
  });
  return { direction, plans: reverse.plans, source: pools.new, target: pools.old, skipped };
}

/** Refuses, as preflight does, when row-level security would show either side other rows than it holds. */
export async function refuseHiddenRows(config: Config, pools: ProjectPools): Promise<void> {
  const hidden: string[] = [];
  await checkRowSecurity(pools.old, config.tables.map((t) => t.from), "source", hidden);
  await checkRowSecurity(pools.new, config.tables.map((t) => t.to), "target", hidden);
  if (hidden.length > 0) throw new PgferryError("preflight", `row-level security would hide rows from the comparison:\n${listed(hidden)}`);
}

/** The reports that compared something (not skipped), and those of them that differ. */
export function outcome(reports: readonly EdgeReport[]): { compared: EdgeReport[]; different: EdgeReport[] } {
  const compared = reports.filter((r) => r.status !== "skipped");
  return { compared, different: compared.filter((r) => r.status === "different") };
}

/**
 * Records the direction's outcome over every table in its state schema (the forward's in the new
 * database, the reverse's in the old one), when that schema exists (a pipeline has run); nothing
 * for a reverse the config has no section for. Throws what the record met; callers decide whether
 * that matters.
 */
export async function recordOutcome(config: Config, pools: ProjectPools, direction: Direction, reports: readonly EdgeReport[]): Promise<void> {
  const state = direction === "forward"
    ? { pool: pools.new, schema: config.target.stateSchema, pipeline: config.source.slot }
    : config.reverse && { pool: pools.old, schema: config.reverse.stateSchema, pipeline: config.reverse.slot };
  if (!state) return;
  const { compared, different } = outcome(reports);
  const { checkpoints } = postgresStores(state);
  if (!(await checkpoints.exists())) return;
  await checkpoints.migrate();
  await new VerificationLog(state).record({ pipeline: state.pipeline, direction, equal: different.length === 0, tables: compared.length, different: different.length });
}
