/**
 * Both directions between an old and a new database, for the reverse pipeline's scenarios: the
 * old database a clone of the fixture, the new one the fixture's tables created empty (in `app` for
 * pgferry, in `public` for native) and filled by the forward direction's initial copy, then the
 * reverse direction (new → old) started on top, copying nothing.
 *
 * - pgferry: one config with a `reverse` section, run as two processes (`pgferry run` and
 *   `pgferry run --direction reverse`), as docs/reverse.md describes. Both stay up: each tags its
 *   writes with its origin and drops the other's.
 * - native: a subscription in the new database to a publication in the old one (copy_data), then a
 *   subscription in the old database to a publication in the new one (no copy). PostgreSQL 15 has
 *   no `origin = none`, so the two would send each change back and forth: the forward subscription is
 *   disabled once its copy is done, and only the reverse runs.
 *
 * The new database gets the workload functions of the drain (`bench_tx`) and of the bidirectional
 * scenario (`bench_lane_tx`) in a schema of its own (`bench`, with a copy of the embedding pool), so
 * the new side writes its tables as the old side writes its own: through the session's search_path.
 */
import type { Cleanup } from "./cleanup.js";
import { TEMPLATE_DB, type ClusterPair } from "./clusters.js";
import { checkpoint, createDatabase, quoteIdent, withClient } from "./db.js";
import { FIXTURE_TABLES, schemaDdl, type FixtureSize } from "./fixture.js";
import { insertMarker, waitForMarker } from "./lagProbe.js";
import { NativeReplicator } from "./nativeRunner.js";
import { PgferryReplicator } from "./pgferryRunner.js";
import type { ProcessOutputs } from "./pgferryProcess.js";
import type { Replicator } from "./replicator.js";
import { verifyTables } from "./verifyTables.js";
import { laneWorkloadSql, workloadSql } from "./workload.js";
import { isMissingRelation } from "../../src/sql/missingRelation.js";

export type TwoWaySystem = "pgferry" | "native";

export interface TwoWayOptions {
  system: TwoWaySystem;
  pair: ClusterPair;
  size: FixtureSize;
  cleanup: Cleanup;
  synchronousCommit: "on" | "off";
  timeoutMs: number;
  outputs?: ProcessOutputs;
  log: (line: string) => void;
}

/** Marker rows (bench_heartbeat ids) of the two-way scenarios: above the one-way scenarios' markers. */
const FIRST_MARKER = 2_000_000_100;

export class TwoWay {
  readonly system: TwoWaySystem;
  readonly oldUrl: string;
  readonly newUrl: string;
  /** Schema of the fixture tables in the new database. */
  readonly newSchema: string;
  /** search_path of a session writing the new side's tables through the workload functions. */
  readonly newSearchPath: string;
  readonly forward: Replicator;
  readonly reverse: Replicator;
  private nextMarker = FIRST_MARKER;
  private readonly drops: (() => Promise<void>)[] = [];

  constructor(private readonly options: TwoWayOptions) {
    const { system, pair } = options;
    this.system = system;
    this.oldUrl = pair.source.url(`${system}_rev_old`);
    this.newUrl = pair.target.url(`${system}_rev_new`);
    this.newSchema = system === "pgferry" ? "app" : "public";
    this.newSearchPath = `${quoteIdent(this.newSchema)}, bench`;
    if (system === "pgferry") {
      const common = {
        sourceUrl: this.oldUrl,
        targetUrl: this.newUrl,
        tables: FIXTURE_TABLES.map((t) => ({ from: `public.${t}`, to: `app.${t}` })),
        slot: "bench_pgferry_fwd",
        synchronousCommit: options.synchronousCommit,
        cleanup: options.cleanup,
        extraYaml: "reverse:\n  slot: bench_pgferry_rev\n  publication: bench_pgferry_rev\n  listen: 127.0.0.1:0\n",
        ...(options.outputs ? { outputs: options.outputs } : {}),
      };
      this.forward = new PgferryReplicator({ ...common, targetSchema: "app", labelPrefix: "two-way-forward" });
      this.reverse = new PgferryReplicator({ ...common, targetSchema: "public", direction: "reverse", labelPrefix: "two-way-reverse" });
    } else {
      const common = { tables: FIXTURE_TABLES.map((t) => `public.${t}`), synchronousCommit: options.synchronousCommit, cleanup: options.cleanup };
      this.forward = new NativeReplicator({ ...common, source: pair.source, sourceDb: `${system}_rev_old`, targetUrl: this.newUrl, name: "bench_native_fwd" });
      this.reverse = new NativeReplicator({ ...common, source: pair.target, sourceDb: `${system}_rev_new`, targetUrl: this.oldUrl, name: "bench_native_rev", copyData: false });
    }
  }

  get clusters() {
    return [this.options.pair.source, this.options.pair.target];
  }

  /** A fresh marker id (a bench_heartbeat row). */
  marker(): number {
    return this.nextMarker++;
  }

  /**
   * Databases, the forward direction's initial copy, then the reverse direction, streaming (a row
   * written on the new side has arrived on the old one).
   */
  async start(): Promise<void> {
    const { system, pair, size, cleanup, timeoutMs, log } = this.options;
    this.drops.push(await createDatabase(pair.source, `${system}_rev_old`, cleanup, TEMPLATE_DB));
    this.drops.push(await createDatabase(pair.target, `${system}_rev_new`, cleanup));
    const vectors = await withClient(this.oldUrl, async (c) => {
      await c.query(laneWorkloadSql(size));
      return (await c.query<{ id: number; v: string }>("SELECT id, v::text AS v FROM bench_vectors ORDER BY id")).rows;
    });
    await withClient(this.newUrl, async (c) => {
      await c.query(schemaDdl(this.newSchema));
      await c.query("CREATE SCHEMA bench; CREATE TABLE bench.bench_vectors (id int PRIMARY KEY, v vector(1536) NOT NULL)");
      await c.query("INSERT INTO bench.bench_vectors SELECT * FROM unnest($1::int[], $2::vector[])", [vectors.map((r) => r.id), vectors.map((r) => r.v)]);
      // Created in `bench`; their tables resolve through the caller's search_path (newSearchPath).
      await c.query("SET search_path = bench");
      await c.query(workloadSql(size));
      await c.query(laneWorkloadSql(size));
    });
    await checkpoint(...this.clusters);
    log(`${system} two-way: initial copy old → new`);
    await this.forward.startWithSnapshot(timeoutMs);
    // PostgreSQL 15 cannot keep both subscriptions on (no origin filter): native runs one way at a time.
    if (system === "native") await this.forward.pause("copied");
    log(`${system} two-way: starting the reverse (new → old)`);
    await this.reverse.startWithSnapshot(timeoutMs);
    await this.caughtUp();
  }

  /** A row written on each running side has arrived on the other: both directions stream and are caught up. */
  async caughtUp(): Promise<void> {
    const { timeoutMs } = this.options;
    const health = () => this.health();
    const toOld = this.marker();
    await insertMarker(this.newUrl, toOld, this.newSchema);
    await waitForMarker(this.oldUrl, "public", toOld, timeoutMs, health);
    if (this.system === "pgferry") {
      const toNew = this.marker();
      await insertMarker(this.oldUrl, toNew);
      await waitForMarker(this.newUrl, this.newSchema, toNew, timeoutMs, health);
    }
  }

  /** Throws when a running direction has failed. */
  async health(): Promise<void> {
    await this.reverse.health();
    if (this.system === "pgferry") await this.forward.health();
  }

  /** Rows of both sides compared, table by table (after caughtUp); empty when they match. */
  async mismatches(): Promise<string[]> {
    return verifyTables(this.oldUrl, this.newUrl, this.newSchema);
  }

  /** Conflicts recorded by pgferry in either database's state schema (none expected: the writes are disjoint). */
  async conflicts(): Promise<number> {
    if (this.system !== "pgferry") return 0;
    const count = (url: string) =>
      withClient(url, async (c) => {
        try {
          return Number((await c.query<{ n: string }>("SELECT count(*)::text AS n FROM _pgferry.conflicts")).rows[0]!.n);
        } catch (error) {
          if (isMissingRelation(error)) return 0;
          throw error;
        }
      });
    return (await count(this.oldUrl)) + (await count(this.newUrl));
  }

  /** VACUUM and CHECKPOINT after a scenario, as the one-way scenarios do. */
  async settle(): Promise<void> {
    await Promise.all([this.oldUrl, this.newUrl].map((url) => withClient(url, (c) => c.query("VACUUM"))));
    await checkpoint(...this.clusters);
  }

  /** Stops both directions and drops both databases (with their slots and subscriptions). Safe after a failed start. */
  async dispose(): Promise<void> {
    await this.reverse.dispose().catch(() => undefined);
    await this.forward.dispose().catch(() => undefined);
    for (const drop of this.drops.reverse()) await drop().catch(() => undefined);
    this.drops.length = 0;
  }
}
