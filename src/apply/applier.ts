/**
 * apply/ — the target side of the stream: set-based SQL for target changes (statements.ts), the batch buffer that collapses them per key (changeBuffer.ts), and the apply session that runs them (this file). It never imports source/.
 *
 * The apply session on the target: one connection, one open transaction at a time. Statements of
 * a batch run inside it; `commit` writes the checkpoint in the same transaction and commits, so data
 * and position become durable together (docs/design.md, rule 2): the ApplyLoop's ApplyTarget on
 * PostgreSQL. Triggers and FK checks of the target do not fire for replicated rows
 * (session_replication_role = replica, as native logical replication does).
 *
 * With a conflict guard (a target that takes writes of its own, conflictGuard.ts), guarded statements
 * get the opposite pipeline's progress as their last parameters, read once per transaction, and
 * `commit` counts the conflicts the transaction recorded; under resolution `stop` it commits nothing
 * and stops the pipeline instead.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import type { Endpoint } from "../sql/endpoint.js";
import type { SynchronousCommit } from "../sql/session.js";
import { PgferryError, tagEndpoint } from "../errors.js";
import type { Checkpoint } from "../plan/changes.js";
import { quoteIdent } from "../sql/quote.js";
import type { ConflictCount, ConflictGuard, OppositeProgress } from "./conflictGuard.js";
import type { CommitResult, Statement } from "./types.js";

export interface ApplyErrorContext {
  table: string;
  op: Statement["op"];
  rows: number;
  sqlstate: string | undefined;
  /** The violated constraint, when the server names one. */
  constraint: string | undefined;
  /**
   * The offending key without its values: the key columns and a SHA-256 fingerprint of the values
   * as PostgreSQL printed them, so an operator can confirm a suspect row (hash its key text) while
   * row values stay out of the logs.
   */
  key?: { columns: string; fingerprint: string };
}

/** `Key (email)=(a@b) already exists.` → the columns and a fingerprint of the values. */
export function keyFingerprint(detail: string | undefined): ApplyErrorContext["key"] {
  const match = detail ? /^Key \((.+?)\)=\((.*)\)/s.exec(detail) : null;
  if (!match) return undefined;
  return { columns: match[1]!, fingerprint: createHash("sha256").update(match[2]!).digest("hex").slice(0, 16) };
}

/**
 * A statement the target rejected, with where it happened. PostgreSQL's `detail` is left out on
 * purpose: it quotes row values (`Key (email)=(...) already exists`), and row values never reach logs.
 */
export class ApplyError extends PgferryError {
  readonly context: ApplyErrorContext;
  constructor(context: ApplyErrorContext, cause: unknown) {
    const message = (cause as Error).message;
    const constraint = context.constraint && !message.includes(context.constraint) ? ` (constraint ${context.constraint})` : "";
    const key = context.key ? `; key (${context.key.columns}) sha256 ${context.key.fingerprint}` : "";
    super("apply", `target rejected ${context.op} of ${context.rows} row(s) into ${context.table}: SQLSTATE ${context.sqlstate ?? "?"} ${message}${constraint}${key}`, {
      cause,
      hint: "fix the target row or constraint named above; pgferry keeps the source WAL and resumes from its checkpoint",
    });
    this.name = "ApplyError";
    this.context = context;
  }
}

export interface ApplierOptions {
  target: Endpoint;
  applicationName: string;
  /** Replication origin to tag our writes with, so a reverse pipeline can recognise them (best effort). */
  origin?: string;
  /**
   * The origin is not best effort: with a pipeline running the other way, untagged writes would be
   * replicated back (loop prevention), so a role that may not set it up fails `connect`.
   */
  requireOrigin?: boolean;
  /** Rows an UPDATE expected on the target but did not find (drift: `pgferry verify`, then resync). */
  onMissingRows?: (table: string, missing: number) => void;
  /** Writes the checkpoint on the apply session, inside the transaction `commit` is about to commit. */
  writeCheckpoint: (client: pg.ClientBase, checkpoint: Checkpoint) => Promise<void>;
  /** Conflict detection for guarded statements (Statement.guard): the opposite pipeline's progress, and where conflicts are recorded. */
  guard?: ConflictGuard;
  /**
   * The session's synchronous_commit (default on). With `off`, `commit` returns before the commit's
   * WAL is flushed, and says where that WAL ends (CommitResult.wal), for the caller to acknowledge
   * the source only once the flush has passed it.
   */
  synchronousCommit?: SynchronousCommit;
}

/** A server's refusal of a statement, with what identifies it (no row values); connection errors pass through. */
function applyError(statement: Statement, error: unknown): unknown {
  const e = error as { code?: string; constraint?: string; detail?: string };
  if (typeof e.code === "string" && !e.code.startsWith("08") && !e.code.startsWith("57")) {
    return new ApplyError({ table: statement.table, op: statement.op, rows: statement.rows, sqlstate: e.code, constraint: e.constraint, key: keyFingerprint(e.detail) }, error);
  }
  return error;
}

/** The runtime parameters of a guarded statement ($floor, $commitTimes, $appliedAt; see statements.ts). */
function progressValues(progress: OppositeProgress): unknown[] {
  // No opposite pipeline yet: a floor of 'infinity' judges no target write local.
  return [progress.floor?.toISOString() ?? "infinity", progress.commitTimes, progress.appliedAt.map((t) => t.toISOString())];
}

/** A conflict row of resolution `stop`, read before the rollback so it can be recorded after it. */
interface StoppedConflict {
  direction: string;
  table_name: string;
  key_columns: string;
  key_fingerprint: string;
  incoming: string | null;
  local: string | null;
  resolution: string;
}

export class Applier {
  private open = false;
  /** The open transaction's guard parameters: the opposite pipeline's progress is read at most once per transaction. */
  private progress: Promise<unknown[]> | undefined;
  /** Guarded statements ran in the open transaction: its conflicts are counted before COMMIT. */
  private guarded = false;

  private constructor(
    private readonly client: pg.Client,
    private readonly options: Pick<ApplierOptions, "onMissingRows" | "writeCheckpoint" | "guard" | "synchronousCommit">,
    /** The session carries a replication origin: each transaction resets its origin timestamp (BEGIN_TAGGED). */
    private readonly tagged = false,
  ) {}

  static async connect(options: ApplierOptions): Promise<Applier> {
    const client = await options.target.applySession(options.applicationName, options.synchronousCommit);
    try {
      // Tagged where the role may (see setupOrigin); untagged writes work the same, unless required.
      if (!options.origin && options.requireOrigin) throw new PgferryError("internal", "requireOrigin without an origin to tag the apply session with");
      const tagged = options.origin ? await setupOrigin(client, options.origin, options.requireOrigin ?? false) : false;
      const { onMissingRows, writeCheckpoint, guard, synchronousCommit } = options;
      return new Applier(client, { onMissingRows, writeCheckpoint, guard, synchronousCommit }, tagged);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw tagEndpoint(error, options.target.side, options.target.url);
    }
  }

  async begin(): Promise<void> {
    if (this.open) return;
    await this.client.query(this.tagged ? BEGIN_TAGGED : "BEGIN");
    this.open = true;
  }

  /** Runs statements inside the open transaction (opening one if needed). */
  async execute(statements: readonly Statement[]): Promise<void> {
    await this.begin();
    for (const statement of statements) {
      // An unrouted change's record is no guarded statement, but its conflict counts all the same.
      if (statement.recordsConflicts) this.guarded = true;
      // Outside the try: a failure to read the progress is not the target refusing the statement.
      const values = statement.guard ? [...statement.values, ...(await this.guardValues())] : statement.values;
      let result: pg.QueryResult;
      try {
        result = await this.client.query({ name: statement.name, text: statement.text, values });
      } catch (error) {
        throw applyError(statement, error);
      }
      if (!statement.expectRows) continue;
      const found = statement.guard ? Number((result.rows[0] as { matched?: unknown } | undefined)?.matched ?? 0) : (result.rowCount ?? 0);
      if (found < statement.rows) this.options.onMissingRows?.(statement.table, statement.rows - found);
    }
  }

  private guardValues(): Promise<unknown[]> {
    const { guard } = this.options;
    if (!guard) return Promise.reject(new PgferryError("internal", "a conflict-checked statement reached an applier that has no conflict guard"));
    this.guarded = true;
    this.progress ??= guard.progress().then(progressValues);
    return this.progress;
  }

  /**
   * Writes the checkpoint (`writeCheckpoint`) inside the open transaction, then commits: both become
   * durable together. Resolves with the conflicts the transaction recorded (none unless guarded) and,
   * for an asynchronous commit, where its WAL ends and how far the flush was (in the same round trip).
   */
  async commit(checkpoint: Checkpoint): Promise<CommitResult> {
    await this.begin();
    const conflicts = this.guarded && this.options.guard ? await this.conflictCounts(this.options.guard) : [];
    await this.options.writeCheckpoint(this.client, checkpoint);
    if (this.options.synchronousCommit !== "off") {
      await this.client.query("COMMIT");
      this.ended();
      return { conflicts };
    }
    // The insert position read after COMMIT returned is at or past the commit record's end.
    const results = (await this.client.query(COMMIT_AND_WAL)) as unknown as pg.QueryResult<WalRow>[];
    this.ended();
    return { conflicts, wal: walPosition(results[1]!.rows[0]!) };
  }

  /** How far the target's WAL is flushed (see CommitResult.wal); for acknowledging asynchronous commits while no batch brings it. */
  async flushedWal(): Promise<bigint> {
    const { rows } = await this.client.query<Pick<WalRow, "flushed">>(`SELECT ${FLUSHED}`);
    return BigInt(rows[0]!.flushed);
  }

  async rollback(): Promise<void> {
    if (!this.open) return;
    this.ended();
    await this.client.query("ROLLBACK").catch(() => undefined);
  }

  private ended(): void {
    this.open = false;
    this.progress = undefined;
    this.guarded = false;
  }

  /**
   * The open transaction's conflicts per table and outcome, as its guarded statements recorded them.
   * `detected_at = now()` (the transaction's start, the column's default) lets the log's
   * (pipeline, detected_at) index find them; `xid` is what makes them this transaction's.
   */
  private async conflictCounts(guard: ConflictGuard): Promise<ConflictCount[]> {
    const { rows } = await this.client.query<{ table_name: string; kept: string; count: string }>(
      `SELECT table_name, kept, count(*) FROM ${quoteIdent(guard.stateSchema)}.conflicts ` +
        `WHERE pipeline = $1 AND detected_at = now() AND xid = pg_current_xact_id() GROUP BY 1, 2 ORDER BY 1, 2`,
      [guard.pipeline],
    );
    if (rows.some((r) => r.kept === "stopped")) await this.stop(guard);
    return rows.map((r) => ({ table: r.table_name, resolution: guard.resolution, kept: r.kept as ConflictCount["kept"], count: Number(r.count) }));
  }

  /**
   * Resolution `stop`: nothing of the transaction commits. Its conflicts are written again in a
   * transaction of their own, so the operator finds them (`pgferry conflicts`), and the pipeline
   * stops with an error that names the first (table and key fingerprint, never values).
   */
  private async stop(guard: ConflictGuard): Promise<never> {
    const conflicts = `${quoteIdent(guard.stateSchema)}.conflicts`;
    const { rows } = await this.client.query<StoppedConflict>(
      `SELECT direction, table_name, key_columns, key_fingerprint, incoming_commit_time::text AS incoming, local_commit_time::text AS local, resolution ` +
        `FROM ${conflicts} WHERE pipeline = $1 AND detected_at = now() AND xid = pg_current_xact_id() AND kept = 'stopped' ORDER BY id`,
      [guard.pipeline],
    );
    await this.rollback();
    const column = (key: keyof StoppedConflict) => rows.map((r) => r[key]);
    // One statement outside any transaction block: its own transaction. Times travel as text, exactly.
    await this.client.query(
      `INSERT INTO ${conflicts} (pipeline, direction, table_name, key_columns, key_fingerprint, incoming_commit_time, local_commit_time, resolution, kept) ` +
        `SELECT $1, d, tn, kc, kf, ic::timestamptz, lc::timestamptz, r, 'stopped' ` +
        `FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS s(d, tn, kc, kf, ic, lc, r)`,
      [guard.pipeline, column("direction"), column("table_name"), column("key_columns"), column("key_fingerprint"), column("incoming"), column("local"), column("resolution")],
    );
    const first = rows[0]!;
    const more = rows.length > 1 ? `; ${rows.length - 1} more in the same batch` : "";
    throw new PgferryError(
      "conflict",
      `write conflict on ${first.table_name}, key (${first.key_columns}) sha256 ${first.key_fingerprint}: the ${guard.direction} pipeline's change to this row had not seen the target's own write of it, and conflicts are set to stop${more}`,
      { hint: "inspect it with `pgferry conflicts`, fix the row on one side so both sides agree, then start pgferry again (nothing of the batch was applied; it resumes from its checkpoint)" },
    );
  }

  /** Ends the session; a peer that does not answer within `graceMs` gets its socket destroyed. */
  async close(graceMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        (this.client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
        resolve();
      }, graceMs);
    });
    await Promise.race([this.client.end().catch(() => undefined), forced]);
    clearTimeout(timer);
  }

  /** Breaks off a statement that does not come back (a stalled peer): its promise rejects, nothing commits. */
  destroy(): void {
    (this.client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  }
}

/** WAL positions as byte offsets, exactly (numeric text). */
const FLUSHED = "(pg_current_wal_flush_lsn() - '0/0')::text AS flushed";
const COMMIT_AND_WAL = `COMMIT; SELECT (pg_current_wal_insert_lsn() - '0/0')::text AS commit_end, ${FLUSHED}`;
interface WalRow { commit_end: string; flushed: string }

function walPosition(row: WalRow): NonNullable<CommitResult["wal"]> {
  return { commitEnd: BigInt(row.commit_end), flushed: BigInt(row.flushed) };
}

/** The grants setupOrigin needs (pg_replication_origin itself is readable by everyone). */
export function originGrants(role: string): string {
  return `GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_reset() TO ${role}`;
}

/**
 * Tags the session's writes with `origin`, created when missing. Both functions need superuser or
 * EXECUTE granted (the create is checked even when the origin exists). Not `required`: any failure
 * leaves the writes untagged and pgferry works as before. `required`: a missing grant is a privilege
 * error naming the GRANT; anything else (the origin held by a predecessor session still alive)
 * passes through for the error policy to retry.
 */
async function setupOrigin(client: pg.Client, origin: string, required: boolean): Promise<boolean> {
  try {
    await client.query(
      "SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
      [origin],
    );
    // Checked now, as each transaction will call it (see BEGIN_TAGGED).
    await client.query("SELECT pg_replication_origin_xact_reset()");
    await client.query("SELECT pg_replication_origin_session_setup($1)", [origin]);
    return true;
  } catch (error) {
    if (!required) return false;
    if ((error as { code?: unknown }).code !== "42501") throw error;
    const role = await client.query<{ role: string }>("SELECT quote_ident(current_user) AS role").then((r) => r.rows[0]?.role ?? "<role>", () => "<role>");
    throw new PgferryError(
      "privilege",
      `the apply session cannot tag its writes with replication origin ${origin} (${(error as Error).message}): ` +
        "loop prevention needs it while a pipeline runs the other way, or every change it writes would be replicated back",
      { cause: error, hint: `run as a superuser on this database: ${originGrants(role)} (docs/privileges.sql grants it); then start pgferry again` },
    );
  }
}

/**
 * BEGIN of a tagged session. The session's origin timestamp, once set by a commit, would otherwise be
 * recorded as the commit time of every later transaction of the session (PostgreSQL sets it only
 * while it is 0), and the other direction would read those stale times as the commit times of what
 * pgferry applied (its checkpoints, lag and conflict judgement). Reset, each commit records its own.
 */
const BEGIN_TAGGED = "BEGIN; SELECT pg_replication_origin_xact_reset()";
