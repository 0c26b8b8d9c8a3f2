/**
 * What each readiness item means, as pure judgments over readings: the one place that says when the
 * lag, the slot, the tables, resyncs, conflicts and the reverse pipeline are ready for a cutover step,
 * and words the detail and the hint. `pgferry cutover --check` (readiness.ts) reads the databases once
 * and judges; the daemon (control/pipelineMonitor.ts) judges what its status poller read, every poll,
 * for `pgferry_ready{check}` and the status page. Both therefore agree on every item they share.
 */
import { cutoverSettings, type Config } from "../config/schema.js";
import { formatBytes } from "../config/byteSize.js";
import type { IndexToBuild, RunningResync, SlotReading } from "../status/readings.js";
import type { TableStatus } from "../state/checkpointStore.js";
import type { ReadinessItem, ReadinessItemName } from "./types.js";

/** The limits a cutover step is gated on (config `cutover`). */
export interface ReadinessLimits {
  maxLagSeconds: number;
  maxRetainedWalBytes: number;
  verifyMaxAgeSeconds: number;
}

export function readinessLimits(config: Pick<Config, "cutover">): ReadinessLimits {
  const { maxLagSeconds, maxRetainedWalBytes, verifyMaxAgeSeconds } = cutoverSettings(config);
  return { maxLagSeconds, maxRetainedWalBytes, verifyMaxAgeSeconds };
}

/** Which pipeline an item is about, for its words: its slot and the database it reads. */
export interface PipelineLabel {
  slot: string;
  /** `old database` for the forward pipeline, `new database` for the reverse. */
  sourceName: string;
}

const ready = (name: ReadinessItemName, detail: string): ReadinessItem => ({ name, ready: true, detail });
const notReady = (name: ReadinessItemName, detail: string, hint: string): ReadinessItem => ({ name, ready: false, detail, hint });

/** Lag in WAL bytes and in seconds (an upper bound on the age of the oldest change not applied; status/lagTracker.ts). */
export interface LagReading {
  bytes: number | undefined;
  seconds: number | undefined;
}

export function lagDetail(lag: LagReading): string {
  const seconds = lag.seconds === undefined ? "unknown" : `${lag.seconds.toFixed(1)} s`;
  return `${seconds} behind (${formatBytes(lag.bytes ?? null)} of WAL not applied)`;
}

export function judgeLag(lag: LagReading, limits: ReadinessLimits, name: ReadinessItemName = "lag"): ReadinessItem {
  const limit = `cutover.maxLagSeconds ${limits.maxLagSeconds} s`;
  if (lag.seconds === undefined) {
    return notReady(name, `lag not measured yet (no checkpoint or source WAL position); limit ${limit}`, "wait until pgferry run streams (pgferry status), then check again");
  }
  if (lag.seconds > limits.maxLagSeconds) {
    return notReady(
      name,
      `${lagDetail(lag)}: above ${limit}`,
      "pgferry is behind or not running: see pgferry status and its log, let it catch up (or pause writes to the source) and check again",
    );
  }
  return ready(name, `${lagDetail(lag)}; limit ${limit}`);
}

/** `slot`: undefined when not read yet, null when it does not exist. */
export function judgeSlot(slot: SlotReading | null | undefined, limits: ReadinessLimits, label: PipelineLabel): ReadinessItem {
  const name = `replication slot ${label.slot}`;
  if (slot === undefined) return notReady("slot", `${name} not read yet`, "wait for the next poll of the source, or check that it is reachable");
  if (slot === null) {
    return notReady(
      "slot",
      `${name} does not exist on the ${label.sourceName}`,
      "start pgferry run: it creates the slot with a snapshot (a slot dropped meanwhile means the target needs a fresh snapshot: pgferry slot drop, then pgferry run)",
    );
  }
  if (slot.walStatus === "lost") {
    return notReady(
      "slot",
      `${name} is lost (wal_status lost): the ${label.sourceName} removed WAL the slot still needed`,
      "the slot cannot resume: pgferry slot drop, then pgferry run for a fresh snapshot; raise max_slot_wal_keep_size so it does not happen again",
    );
  }
  const retained = `retains ${formatBytes(slot.retainedBytes)} of WAL (limit cutover.maxRetainedWalBytes ${formatBytes(limits.maxRetainedWalBytes)})`;
  if (!slot.active) {
    return notReady("slot", `${name} exists but nothing streams from it; ${retained}`, "start pgferry run (or wait for it to reconnect: pgferry status)");
  }
  if (slot.retainedBytes !== null && slot.retainedBytes > limits.maxRetainedWalBytes) {
    return notReady("slot", `${name} ${retained}: above the limit`, "the slot is not advancing as fast as the source writes: let pgferry catch up (pgferry status) and check again");
  }
  return ready("slot", `${name} in use, wal_status ${slot.walStatus ?? "unknown"}, ${retained}`);
}


/**
 * Every mapped table copied, and every secondary index dropped for the copy built again: a table is
 * not ready for traffic while the index its queries use (an HNSW build can take minutes) is missing.
 * `tables`: the pipeline's per-table states; `expected`: the source tables the mapping names (a
 * table missing from the state is not ready); `toBuild`: the indexes not built again yet.
 */
export function judgeTables(
  tables: readonly TableStatus[],
  expected: readonly string[] | undefined,
  label: PipelineLabel,
  /** `name`: the item it is judged as (`reverse` for the other direction's tables). */
  { name = "tables", toBuild = [] }: { name?: ReadinessItemName; toBuild?: readonly IndexToBuild[] } = {},
): ReadinessItem {
  const known = new Set(tables.map((t) => t.table));
  const missing = (expected ?? []).filter((t) => !known.has(t));
  if (tables.length === 0) {
    return notReady(name, `no table state recorded for pipeline ${label.slot}`, "start pgferry run: it records every mapped table and copies it");
  }
  const errored = tables.filter((t) => t.state === "errored");
  const waiting = tables.filter((t) => t.state !== "ready" && t.state !== "errored");
  const indexes = new Map<string, string[]>();
  for (const { table, index } of toBuild) indexes.set(table, [...(indexes.get(table) ?? []), index]);
  if (errored.length === 0 && waiting.length === 0 && missing.length === 0 && indexes.size === 0) return ready(name, `${tables.length} of ${tables.length} tables ready`);
  const parts = [
    ...errored.map((t) => `${t.table} errored${t.error ? ` (${t.error})` : ""}`),
    ...waiting.map((t) => `${t.table} ${t.state}`),
    ...missing.map((t) => `${t} not recorded yet`),
  ];
  const total = tables.length + missing.length;
  const copied = parts.length > 0 ? `${total - parts.length} of ${total} tables ready: ${parts.join(", ")}` : `${total} of ${total} tables copied`;
  const unbuilt = [...indexes].map(([table, names]) => `${table} (${names.join(", ")})`);
  const detail = unbuilt.length > 0 ? `${copied}; secondary indexes not built again yet: ${unbuilt.join(", ")}` : copied;
  const hint = errored.length > 0
    ? "an errored table is copied again when pgferry run starts: fix the error it names and restart pgferry (or pgferry resync <table>)"
    : waiting.length > 0 || missing.length > 0
      ? "wait for the snapshot to finish (pgferry status shows its progress), or start pgferry run"
      : "wait: pgferry run builds a table's secondary indexes once its copy ends (snapshot.deferIndexes; its log says \"index rebuilt\"), and again on its next start if it stopped before";
  return notReady(name, detail, hint);
}


export function judgeResyncs(running: readonly RunningResync[]): ReadinessItem {
  if (running.length === 0) return ready("resync", "no resync running");
  const each = running.map((r) => `${r.table} (id ${r.id}, ${r.rowsDone}${r.rowsEstimated === null ? "" : ` of ~${r.rowsEstimated}`} rows)`);
  return notReady(
    "resync",
    `${running.length} resync${running.length === 1 ? "" : "s"} running: ${each.join(", ")}`,
    "wait for it to finish (GET /v1/resyncs/<id>, or pgferry resync <table> --wait); a running resync is rewriting target rows",
  );
}

/** Conflicts a pipeline stopped on and has not applied past, per direction. */
export interface UnresolvedConflicts {
  direction: "forward" | "reverse";
  count: number;
}

export function judgeConflicts(unresolved: readonly UnresolvedConflicts[]): ReadinessItem {
  const open = unresolved.filter((u) => u.count > 0);
  const read = unresolved.map((u) => u.direction).join(" and ");
  if (open.length === 0) return ready("conflicts", `no unresolved conflicts${read ? ` (${read})` : ""}`);
  return notReady(
    "conflicts",
    `${open.map((u) => `${u.count} unresolved conflict${u.count === 1 ? "" : "s"} (${u.direction})`).join(", ")}: the pipeline stopped on rows both sides wrote`,
    "list them with pgferry conflicts, fix each row on one side so both agree, then start pgferry again (it applies the batch it stopped on)",
  );
}

/** The reverse pipeline as seen from its state (on the old database) and its source (the new one). */
export interface ReverseReading {
  /** Its state schema and slot, for the words. */
  stateSchema: string;
  slot: string;
  /** Whether its state row exists. */
  exists: boolean;
  tables: readonly TableStatus[];
  lag: LagReading;
}

/** `reading`: null when the config has no `reverse` section. */
export function judgeReverse(reading: ReverseReading | null, limits: ReadinessLimits): ReadinessItem {
  if (reading === null) return ready("reverse", "no reverse section");
  const label = `reverse pipeline ${reading.slot}`;
  if (!reading.exists) {
    return notReady(
      "reverse",
      `${label} has no state in ${reading.stateSchema} on the old database`,
      "start the reverse pipeline before the new side takes writes: pgferry run --direction reverse (or both); docs/reverse.md",
    );
  }
  const tables = judgeTables(reading.tables, undefined, { slot: reading.slot, sourceName: "new database" }, { name: "reverse" });
  if (!tables.ready) return { ...tables, detail: `${label}: ${tables.detail}` };
  const lag = judgeLag(reading.lag, limits, "reverse");
  if (!lag.ready) return { ...lag, detail: `${label}: ${lag.detail}`, hint: "the reverse pipeline is behind or not running: pgferry run --direction reverse, and pgferry status on its control address" };
  return ready("reverse", `${label}: ${tables.detail}; ${lag.detail}`);
}

/** A report's items in the order the issue lists them. */
export const ITEM_ORDER: readonly ReadinessItemName[] = ["lag", "slot", "tables", "resync", "sequences", "verify", "reverse", "conflicts"];
