/**
 * `pgferry cutover --check`: is the new project ready to take the traffic? One reading of both
 * databases, judged item by item (readinessItems.ts words what each means):
 *
 * - lag: the forward pipeline's, under cutover.maxLagSeconds. Measured as the daemon measures it
 *   (status/lagTracker.ts: the source's WAL position against the checkpoint and the slot's confirmed
 *   flush), re-read for up to the limit, so a pipeline that applies what was committed before the
 *   check in time is ready, and WAL written meanwhile elsewhere does not count against it;
 * - slot, tables, resync, conflicts: read as the daemon's status poller reads them;
 * - sequences: every new-side key sequence at or past what the old side and the column used
 *   (sequences.ts sequenceGaps);
 * - verify: a recent equal `pgferry verify` (recorded by it in the state schema), a comparison now, or none;
 * - reverse: with a `reverse` section, the reverse pipeline's state, tables and lag.
 *
 * An item whose reading fails is not ready and says why; the others are still judged.
 */
import type pg from "pg";
import type { Config } from "../config/schema.js";
import { DIRECTIONS } from "../config/directions.js";
import { LagTracker } from "../status/lagTracker.js";
import { readSource, readTarget, trackLag, unresolvedConflicts, type SourceReading, type TargetReading } from "../status/readings.js";
import { PgferryError } from "../errors.js";
import { redactSecrets } from "../redact.js";
import { VerificationLog, type VerificationRecord } from "../state/verificationLog.js";
import { directionRun, outcome, recordOutcome, refuseHiddenRows } from "../verify/directions.js";
import { verify } from "../verify/verifier.js";
import {
  ITEM_ORDER, judgeConflicts, judgeLag, judgeResyncs, judgeReverse, judgeSlot, judgeTables, type LagReading, type ReadinessLimits, type UnresolvedConflicts,
} from "./readinessItems.js";
import { sequenceGaps } from "./sequences.js";
import type { ReadinessItem, ReadinessItemName, ReadinessReport } from "./types.js";

export type { ReadinessLimits } from "./readinessItems.js";
export { readinessLimits } from "./readinessItems.js";

export type VerifyMode = "none" | "sample" | "full" | "recent";
export const VERIFY_MODES: readonly VerifyMode[] = ["none", "sample", "full", "recent"];

export interface ReadinessOptions {
  config: Config;
  /** The old database (the config's source). */
  old: pg.Pool;
  /** The new database (the config's target). */
  new: pg.Pool;
  limits: ReadinessLimits;
  verify: VerifyMode;
}

/** How often the lag is re-read while it is over the limit. */
const LAG_POLL_MS = 250;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One pipeline read for the check: its source (WAL, slot), its state, and its lag. */
interface PipelineReading {
  source: SourceReading;
  target: TargetReading;
  lag: LagReading;
}

/**
 * Reads a pipeline (slot on `sourceDb`, state in `stateSchema` on `stateDb`) until its lag is within
 * `limitSeconds` or that long has passed. The first reading decides when the pipeline is caught up;
 * re-reading lets it show that it applies what was committed before the check began.
 */
async function readPipeline(sourceDb: pg.Pool, stateDb: pg.Pool, stateSchema: string, slot: string, limitSeconds: number): Promise<PipelineReading> {
  const tracker = new LagTracker();
  const deadline = Date.now() + limitSeconds * 1000;
  for (;;) {
    const startedAt = Date.now();
    // The source first: a checkpoint read after it is at least as recent. Its insert position, so
    // that a commit made with synchronous_commit off counts before its WAL is written.
    const source = await readSource(sourceDb, slot, "insert");
    const target = await readTarget(stateDb, stateSchema, slot);
    trackLag(tracker, source, startedAt, target.state);
    const lag = { bytes: tracker.bytes(), seconds: tracker.seconds(Date.now()) };
    const withinLimit = lag.seconds !== undefined && lag.seconds <= limitSeconds;
    if (withinLimit || target.state === null || Date.now() + LAG_POLL_MS > deadline) return { source, target, lag };
    await sleep(LAG_POLL_MS);
  }
}

function failed(name: ReadinessItemName, error: unknown): ReadinessItem {
  // One line in the table: a listed message (`...:\n  - a\n  - b`) as `...: a; b`.
  const message = redactSecrets(error instanceof Error ? error.message : String(error)).replace(/:\n {2}- /g, ": ").replace(/\n {2}- /g, "; ");
  const hint = error instanceof PgferryError && error.hint ? error.hint : "fix what the message names and check again";
  return { name, ready: false, detail: `could not check: ${message}`, hint };
}

const noState = (name: ReadinessItemName, slot: string, schema: string): ReadinessItem => ({
  name, ready: false, detail: `pipeline ${slot} has no state in ${schema} on the new database`, hint: "start pgferry run: it creates its state, the slot and the snapshot",
});

async function sequencesItem(options: ReadinessOptions): Promise<ReadinessItem> {
  const gaps = await sequenceGaps({ config: options.config, old: options.old, new: options.new });
  if (gaps.length === 0) return { name: "sequences", ready: true, detail: "no key sequence on the new side has anything to stay ahead of" };
  const behind = gaps.filter((g) => g.gap < 0n);
  const describe = (g: (typeof gaps)[number]) => `${g.sequence}${g.column ? ` (${g.column})` : ""} next ${g.next.toString()}, needs ${g.needed.toString()}`;
  if (behind.length > 0) {
    return {
      name: "sequences",
      ready: false,
      detail: `${behind.length} of ${gaps.length} new-side sequences behind the keys the old side used: ${behind.map(describe).join("; ")}`,
      hint: "run pgferry sequences sync (pgferry cutover syncs them too, in its step 3); an insert on the new side could otherwise take a key the old side used",
    };
  }
  const closest = gaps.reduce((a, b) => (b.gap < a.gap ? b : a));
  return { name: "sequences", ready: true, detail: `${gaps.length} new-side sequences ahead of the old side's keys (closest: ${closest.sequence}, ${closest.gap.toString()} ahead)` };
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** One direction's latest recorded verify, judged; `null` reading = none recorded. */
function judgeRecorded(direction: "forward" | "reverse", record: VerificationRecord | null, limits: ReadinessLimits): { ok: boolean; text: string } {
  if (!record) return { ok: false, text: `${direction}: no pgferry verify recorded` };
  const when = `${formatAge(record.ageSeconds)} ago`;
  if (record.ageSeconds > limits.verifyMaxAgeSeconds) return { ok: false, text: `${direction}: the last pgferry verify was ${when}, older than cutover.verifyMaxAgeSeconds (${limits.verifyMaxAgeSeconds} s)` };
  if (!record.equal) return { ok: false, text: `${direction}: the last pgferry verify (${when}) found ${record.different} of ${record.tables} tables different` };
  return { ok: true, text: `${direction}: equal, ${record.tables} tables, ${when}` };
}

async function recentVerify(options: ReadinessOptions): Promise<ReadinessItem> {
  const { config, limits } = options;
  const judged = [judgeRecorded("forward", await new VerificationLog({ pool: options.new, schema: config.target.stateSchema }).latest(config.source.slot, "forward"), limits)];
  if (config.reverse) {
    judged.push(judgeRecorded("reverse", await new VerificationLog({ pool: options.old, schema: config.reverse.stateSchema }).latest(config.reverse.slot, "reverse"), limits));
  }
  const detail = judged.map((j) => j.text).join("; ");
  if (judged.every((j) => j.ok)) return { name: "verify", ready: true, detail };
  return {
    name: "verify",
    ready: false,
    detail,
    hint: `run pgferry verify${config.reverse ? " --direction both" : ""} (it records its result), fix what it finds, or check with --verify full`,
  };
}

/** Compares now, as `pgferry verify` does (both directions with a `reverse` section), and records the result. */
async function verifyNow(options: ReadinessOptions, sample: boolean): Promise<ReadinessItem> {
  const { config } = options;
  const pools = { old: options.old, new: options.new };
  await refuseHiddenRows(config, pools);
  const texts: string[] = [];
  let ready = true;
  for (const direction of config.reverse ? DIRECTIONS : (["forward"] as const)) {
    const run = await directionRun(config, direction, pools);
    const reports = await verify(run.plans, { source: run.source, target: run.target, examples: 0, rechecks: 3, recheckDelayMs: 1000 });
    const { compared, different } = outcome(reports);
    if (different.length > 0) ready = false;
    texts.push(different.length === 0 ? `${direction}: ${compared.length} tables equal` : `${direction}: ${different.length} of ${compared.length} tables different (${different.map((r) => `${r.source} -> ${r.target}`).join(", ")})`);
    // Recorded as `pgferry verify` records it; a failure to record does not change what was found.
    await recordOutcome(config, pools, direction, reports).catch(() => undefined);
  }
  const prefix = sample ? "sample: the verifier sums every row of each bucket, so a sample costs what the whole does; compared in full: " : "compared now: ";
  return ready
    ? { name: "verify", ready, detail: `${prefix}${texts.join("; ")}` }
    : { name: "verify", ready, detail: `${prefix}${texts.join("; ")}`, hint: "pgferry verify lists the differing keys; pgferry resync <table> repairs a table while streaming" };
}

function verifyItem(options: ReadinessOptions): Promise<ReadinessItem> {
  switch (options.verify) {
    case "none":
      return Promise.resolve({ name: "verify", ready: true, detail: "not checked (--verify none)" });
    case "recent":
      return recentVerify(options);
    case "full":
      return verifyNow(options, false);
    case "sample":
      return verifyNow(options, true);
  }
}

/** The forward pipeline's items: lag, slot, tables, resync (one reading). */
async function forwardItems(options: ReadinessOptions): Promise<ReadinessItem[]> {
  const { config, limits } = options;
  const { slot } = config.source;
  const reading = await readPipeline(options.old, options.new, config.target.stateSchema, slot, limits.maxLagSeconds);
  const label = { slot, sourceName: "old database" };
  const stateless = reading.target.state === null;
  return [
    stateless ? noState("lag", slot, config.target.stateSchema) : judgeLag(reading.lag, limits),
    judgeSlot(reading.source.slot, limits, label),
    stateless
      ? noState("tables", slot, config.target.stateSchema)
      : judgeTables(reading.target.tables, [...new Set(config.tables.map((t) => t.from))], label, { toBuild: reading.target.indexesToBuild ?? [] }),
    judgeResyncs(reading.target.resyncs ?? []),
  ];
}

async function reverseItem(options: ReadinessOptions): Promise<ReadinessItem> {
  const { config, limits } = options;
  if (!config.reverse) return judgeReverse(null, limits);
  const { slot, stateSchema } = config.reverse;
  const reading = await readPipeline(options.new, options.old, stateSchema, slot, limits.maxLagSeconds);
  return judgeReverse({ slot, stateSchema, exists: reading.target.state !== null, tables: reading.target.tables, lag: reading.lag }, limits);
}

async function conflictsItem(options: ReadinessOptions): Promise<ReadinessItem> {
  const { config } = options;
  const counts: UnresolvedConflicts[] = [{ direction: "forward", count: await unresolvedConflicts(options.new, config.target.stateSchema, config.source.slot) }];
  if (config.reverse) counts.push({ direction: "reverse", count: await unresolvedConflicts(options.old, config.reverse.stateSchema, config.reverse.slot) });
  return judgeConflicts(counts);
}

const guarded = (names: readonly ReadinessItemName[], check: () => Promise<ReadinessItem[]>): Promise<ReadinessItem[]> =>
  check().catch((error: unknown) => names.map((name) => failed(name, error)));

/** Every item, in the issue's order; `ready` when all are. Both databases must answer (their errors throw). */
export async function readiness(options: ReadinessOptions): Promise<ReadinessReport> {
  // A database that cannot be reached is the command's error (its report names the side), not eight items' detail.
  await Promise.all([options.old.query("SELECT 1"), options.new.query("SELECT 1")]);
  const one = (name: ReadinessItemName, check: () => Promise<ReadinessItem>) => guarded([name], async () => [await check()]);
  const groups = await Promise.all([
    guarded(["lag", "slot", "tables", "resync"], () => forwardItems(options)),
    one("sequences", () => sequencesItem(options)),
    one("verify", () => verifyItem(options)),
    one("reverse", () => reverseItem(options)),
    one("conflicts", () => conflictsItem(options)),
  ]);
  const items = groups.flat().sort((a, b) => ITEM_ORDER.indexOf(a.name) - ITEM_ORDER.indexOf(b.name));
  return { ready: items.every((i) => i.ready), items, checkedAt: new Date() };
}
