/**
 * pgferry under test: a config file with the bench databases (local trust auth, so the URLs hold no
 * password) and pgferry's defaults for snapshot and apply, and one `pgferry run` process per phase so
 * each phase has its own peak RSS. The initial copy is done when every row of `_pgferry.tables` in
 * the target is `ready`.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cleanup } from "./cleanup.js";
import { connect, withClient } from "./db.js";
import { freePort } from "../embedded/localCluster.js";
import { pollUntil } from "./poll.js";
import { PgferryProcess, type ProcessOutputs } from "./pgferryProcess.js";
import { cpuSeconds, serverCpuSeconds } from "./processCpu.js";
import type { PhaseProcessStats, Replicator } from "./replicator.js";
import { isMissingRelation } from "../../src/sql/missingRelation.js";

export interface PgferryRunnerOptions {
  sourceUrl: string;
  targetUrl: string;
  /** Table entries as in the config file (`from`, `to` and any transform keys). */
  tables: readonly Record<string, unknown>[];
  /** Replication slot and publication name. */
  slot: string;
  /** Schema of the replicated tables in the target (where the bench looks for its markers). */
  targetSchema: string;
  cleanup: Cleanup;
  /** Where each phase's process keeps its log (and its CPU profile, with `profile`). */
  outputs?: ProcessOutputs;
  /** `apply.synchronousCommit` (default off, pgferry's default). */
  synchronousCommit?: "on" | "off";
  /** Extra top-level YAML (e.g. a mapping's other sections); appended before `tables`. */
  extraYaml?: string;
  /**
   * `reverse`: `pgferry run --direction reverse` on this config (which needs a `reverse` section in
   * `extraYaml`). The URLs keep the config's meaning (source = old, target = new); the reverse keeps
   * its state in the old database and copies nothing. Default `forward`.
   */
  direction?: "forward" | "reverse";
  /** Prefix of the processes' labels (log tails, CPU profile names), when several replicators run in one bench. */
  labelPrefix?: string;
}

export class PgferryReplicator implements Replicator {
  readonly system = "pgferry";
  readonly targetSchema: string;
  private process: PgferryProcess | undefined;
  private configFile: string | undefined;
  private configDir: string | undefined;
  private unregister: (() => void) | undefined;

  constructor(private readonly options: PgferryRunnerOptions) {
    this.targetSchema = options.targetSchema;
  }

  get startupSeconds(): number | undefined {
    const p = this.process;
    return p?.streamingAt === undefined ? undefined : (p.streamingAt - p.startedAt) / 1000;
  }

  async startWithSnapshot(timeoutMs: number): Promise<void> {
    await this.writeConfig();
    this.unregister = this.options.cleanup.add("pgferry", () => this.dispose());
    this.start("snapshot");
    // One state row per source table: a split names its source in several entries. The reverse's
    // sources are the new tables, and its state is in the old database.
    const reverse = this.options.direction === "reverse";
    const expected = new Set(this.options.tables.map((t) => String(reverse ? t.to : t.from))).size;
    const client = await connect(reverse ? this.options.sourceUrl : this.options.targetUrl, "pgferry-bench-state-poll");
    try {
      await pollUntil(
        async () => {
          const state = await readTableStates(client);
          if (state?.errored) throw new Error(`pgferry marked tables errored: ${state.errored}`);
          // Ready means copied and indexed: the secondary indexes it deferred are built (snapshot.deferIndexes).
          return state && state.total === expected && state.ready === expected && (await deferredIndexes(client)) === 0 ? true : undefined;
        },
        { what: "pgferry's tables to be ready and their deferred indexes built", timeoutMs, intervalMs: 50, guard: () => this.process?.checkAlive() },
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async pause(): Promise<PhaseProcessStats | undefined> {
    const p = this.process;
    if (!p) return undefined;
    const peakRssBytes = p.peakRss();
    const exit = await p.stop();
    if (exit.code !== 0) throw new Error(`pgferry (${p.label}) did not stop cleanly (${exit.signal ?? `code ${exit.code}`}); last output:\n${p.outputTail()}`);
    return { peakRssBytes: Math.max(peakRssBytes, p.peakRss()), cpuProfile: p.cpuProfile };
  }

  resume(label: string): Promise<void> {
    this.start(label);
    return Promise.resolve();
  }

  /** Resolves while the process runs; rejects (with its last output) once it has exited. */
  health(): Promise<void> {
    return new Promise((resolve) => {
      this.process?.checkAlive();
      resolve();
    });
  }

  async cpuSeconds(): Promise<Record<string, number>> {
    const { sourceUrl, targetUrl } = this.options;
    // pgferry's own connections are named pgferry-<role>; the bench's pollers pgferry-bench-*.
    const ours = "datname = $1 AND application_name LIKE 'pgferry%' AND application_name NOT LIKE 'pgferry-bench%'";
    // The reverse reads the new database and writes the old one. With the forward running beside
    // it, the reverse's walsender is the only one on the new side, and the old side's walsender is
    // the forward's.
    const [source, target] =
      this.options.direction === "reverse"
        ? await Promise.all([
            serverCpuSeconds(targetUrl, `${ours} AND backend_type = 'walsender'`, [databaseOf(targetUrl)]),
            serverCpuSeconds(sourceUrl, `${ours} AND backend_type <> 'walsender'`, [databaseOf(sourceUrl)]),
          ])
        : await Promise.all([serverCpuSeconds(sourceUrl, ours, [databaseOf(sourceUrl)]), serverCpuSeconds(targetUrl, ours, [databaseOf(targetUrl)])]);
    const pid = this.process?.pid;
    return { replicator: (pid === undefined ? undefined : cpuSeconds(pid)) ?? 0, sourceBackends: source, targetBackends: target };
  }

  /** Last log lines of the current process, for error reports. */
  outputTail(): string {
    return this.process?.outputTail() ?? "";
  }

  async dispose(): Promise<void> {
    this.unregister?.();
    this.unregister = undefined;
    if (this.process) await this.process.stop(10_000);
    this.process = undefined;
    // The slot goes with the source database; pgferry's publication and state go with both databases.
    if (this.configDir) await rm(this.configDir, { recursive: true, force: true });
    this.configDir = undefined;
  }

  private start(label: string): void {
    if (!this.configFile) throw new Error("pgferry config not written yet");
    const { labelPrefix, outputs, direction } = this.options;
    this.process = new PgferryProcess(this.configFile, labelPrefix ? `${labelPrefix}-${label}` : label, outputs, direction === "reverse" ? ["--direction", "reverse"] : []);
  }

  private async writeConfig(): Promise<void> {
    const { sourceUrl, targetUrl, slot, tables, extraYaml = "", synchronousCommit = "off" } = this.options;
    this.configDir = await mkdtemp(join(tmpdir(), "pgferry-bench-config-"));
    this.configFile = join(this.configDir, "pgferry.yaml");
    const yaml = `# written by npm run bench; pgferry's defaults for snapshot and apply, but synchronousCommit as the bench runs it
source:
  url: ${sourceUrl}
  slot: ${slot}
  publication: ${slot}
target:
  url: ${targetUrl}
control:
  listen: 127.0.0.1:${await freePort()}
log:
  level: debug
  format: json
apply:
  synchronousCommit: "${synchronousCommit}"
${extraYaml}
tables:
${tables.map((t) => `  - ${JSON.stringify(t)}`).join("\n")}
`;
    await writeFile(this.configFile, yaml);
  }
}

function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

interface TableStates {
  total: number;
  ready: number;
  errored: string | null;
}

async function readTableStates(client: Awaited<ReturnType<typeof connect>>): Promise<TableStates | undefined> {
  try {
    const { rows } = await client.query<TableStates>(
      `SELECT count(*)::int AS total, (count(*) FILTER (WHERE state = 'ready'))::int AS ready,
              string_agg(source_table || ': ' || coalesce(error, '?'), '; ') FILTER (WHERE state = 'errored') AS errored
       FROM _pgferry.tables`,
    );
    return rows[0];
  } catch (error) {
    if (isMissingRelation(error)) return undefined; // not created yet
    throw error;
  }
}

/** Secondary indexes pgferry dropped for its copy and has not built yet (none before its state schema has the table). */
async function deferredIndexes(client: Awaited<ReturnType<typeof connect>>): Promise<number> {
  try {
    const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM _pgferry.deferred_indexes");
    return rows[0]?.n ?? 0;
  } catch (error) {
    if (isMissingRelation(error)) return 0;
    throw error;
  }
}

/** The checkpoint pgferry keeps in the target (for the report). */
export async function pgferryCheckpoint(targetUrl: string): Promise<string | undefined> {
  return withClient(targetUrl, async (c) => (await c.query<{ lsn: string }>("SELECT max(end_lsn)::text AS lsn FROM _pgferry.pipelines")).rows[0]?.lsn);
}
