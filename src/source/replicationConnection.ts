/**
 * A walsender connection (`replication: 'database'`) on top of `pg`: slot creation with an exported
 * snapshot, START_REPLICATION for pgoutput, and standby status updates that we send ourselves, so a
 * position is acknowledged only when the pipeline says it is durable (docs/design.md, rule 2). Incoming
 * CopyData frames are split into XLogData and keepalives; everything else is the caller's.
 * `pause()`/`resume()` stop reading the socket: TCP backpressure reaches the walsender.
 */
import pg from "pg";
import { quoteIdent, quoteLiteral } from "../sql/quote.js";
import type { Endpoint } from "../sql/endpoint.js";
import { PgferryError } from "../errors.js";
import { formatLsn, parseLsn, PG_EPOCH_MS } from "./lsn.js";

export interface CreatedSlot {
  slotName: string;
  consistentPoint: bigint;
  /** Exported snapshot name; valid while this connection stays idle. */
  snapshotName: string | null;
}

export interface StreamHandler {
  /** One pgoutput message (the XLogData payload). `walStart` is the LSN of the WAL record. */
  onXLogData(walStart: bigint, walEnd: bigint, payload: Buffer): void;
  onKeepalive(walEnd: bigint, replyRequested: boolean): void;
}

export interface StreamOptions {
  slot: string;
  startLsn: bigint;
  publication: string;
  protoVersion: 1 | 2;
  /** Ask pgoutput for logical decoding messages (pg_logical_emit_message), used by resync watermarks. */
  messages: boolean;
  /**
   * Loop prevention: on PostgreSQL 16+ ask pgoutput for `origin 'none'`, so the server leaves out
   * every transaction that carries a replication origin (all of them, not only pgferry's: asked only
   * when the source has no other origin). Otherwise, and on older servers, the reader's own filter
   * (StreamReader `ignoreOrigins`) does it.
   */
  skipOriginated?: boolean;
  /**
   * pgoutput `binary 'true'`: every value of a type with a send function in its binary format
   * (PostgreSQL 14+, pgferry's floor). RelationLayout keeps or prints each one.
   */
  binary?: boolean;
}

/** The first PostgreSQL version whose pgoutput takes the `origin` option. */
const ORIGIN_OPTION_VERSION = 160000;

/** pgoutput's START_REPLICATION options for `options` on a server of `serverVersionNum` (server_version_num). */
export function pgoutputOptions(options: StreamOptions, serverVersionNum: number): string[] {
  return [
    `proto_version '${options.protoVersion}'`,
    `publication_names ${quoteLiteral(quoteIdent(options.publication))}`,
    ...(options.messages ? ["messages 'true'"] : []),
    ...(options.binary ? ["binary 'true'"] : []),
    ...(options.skipOriginated && serverVersionNum >= ORIGIN_OPTION_VERSION ? ["origin 'none'"] : []),
  ];
}

interface RawConnection {
  stream: { pause(): void; resume(): void; destroy(): void };
  on(event: "copyData", listener: (msg: { chunk: Buffer }) => void): void;
  once(event: "replicationStart", listener: () => void): void;
  removeAllListeners(event?: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
}

export class ReplicationConnection {
  private readonly client: pg.Client;
  private streaming = false;

  private constructor(client: pg.Client) {
    this.client = client;
  }

  static async connect(source: Endpoint, applicationName: string): Promise<ReplicationConnection> {
    // Pinned settings matter here most: the walsender prints pgoutput's text values with them.
    return new ReplicationConnection(await source.client(applicationName, { replication: true }));
  }

  private get raw(): RawConnection {
    return (this.client as unknown as { connection: RawConnection }).connection;
  }

  /**
   * CREATE_REPLICATION_SLOT with pgoutput. `exportSnapshot` exports a snapshot that sees exactly the
   * transactions committed before `consistentPoint`; streaming from the slot yields all after it.
   */
  async createSlot(slot: string, options: { temporary: boolean; exportSnapshot: boolean }): Promise<CreatedSlot> {
    const temporary = options.temporary ? " TEMPORARY" : "";
    const snapshot = options.exportSnapshot ? "'export'" : "'nothing'";
    const result = await this.client.query<{ slot_name: string; consistent_point: string; snapshot_name: string | null }>(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)}${temporary} LOGICAL pgoutput (SNAPSHOT ${snapshot})`,
    );
    const row = result.rows[0];
    if (!row) throw new PgferryError("protocol", `CREATE_REPLICATION_SLOT ${slot} returned no row`);
    return { slotName: row.slot_name, consistentPoint: parseLsn(row.consistent_point), snapshotName: row.snapshot_name };
  }

  /** Streams until the server ends the copy or the connection fails (the promise then rejects). */
  /** `onStarted` runs once the server has accepted START_REPLICATION (CopyBothResponse). */
  async stream(options: StreamOptions, handler: StreamHandler, onStarted?: () => void): Promise<void> {
    if (this.streaming) throw new PgferryError("internal", "replication connection is already streaming");
    this.streaming = true;
    let pluginOptions: string[];
    try {
      // Asked before the copy starts: once streaming, the connection takes no query.
      // `origin 'none'` drops every origin's transactions: only asked for when pgferry's are the only
      // origins on the source (a source that is itself a subscriber keeps the reader's own filter).
      const ask = options.skipOriginated === true && (await this.onlyPgferryOrigins());
      pluginOptions = pgoutputOptions(options, ask ? await this.serverVersionNum() : 0);
    } catch (error) {
      this.streaming = false;
      throw error;
    }
    const raw = this.raw;
    let failure: Error | undefined;
    raw.on("copyData", ({ chunk }) => {
      if (failure !== undefined) return;
      try {
        const kind = chunk[0];
        if (kind === 0x77 /* 'w' XLogData */) {
          handler.onXLogData(chunk.readBigUInt64BE(1), chunk.readBigUInt64BE(9), chunk.subarray(25));
        } else if (kind === 0x6b /* 'k' keepalive */) {
          handler.onKeepalive(chunk.readBigUInt64BE(1), chunk[17] === 1);
        } else {
          throw new PgferryError("protocol", `unexpected replication CopyData message 0x${kind?.toString(16)}`);
        }
      } catch (error) {
        // Throwing here would escape into pg's socket parser; end the stream and reject with it instead.
        failure = error instanceof Error ? error : new Error(String(error));
        this.raw.stream.destroy();
      }
    });
    if (onStarted) raw.once("replicationStart", onStarted);
    try {
      await this.client.query(
        `START_REPLICATION SLOT ${quoteIdent(options.slot)} LOGICAL ${formatLsn(options.startLsn)} (${pluginOptions.join(", ")})`,
      );
      if (failure !== undefined) throw failure;
    } catch (error) {
      throw failure ?? error;
    } finally {
      raw.removeAllListeners("copyData");
      raw.removeAllListeners("replicationStart");
      this.streaming = false;
    }
  }

  /** The server's version as server_version_num (`SHOW` is a walsender command as well). */
  /** Whether every replication origin defined on the server is one of pgferry's (`pgferry_<slot>`). */
  private async onlyPgferryOrigins(): Promise<boolean> {
    const result = await this.client.query<{ n: string }>("SELECT count(*) AS n FROM pg_replication_origin WHERE roname NOT LIKE 'pgferry\\_%'");
    return Number(result.rows[0]?.n) === 0;
  }

  async serverVersionNum(): Promise<number> {
    const result = await this.client.query<{ server_version_num: string }>("SHOW server_version_num");
    const version = Number(result.rows[0]?.server_version_num);
    if (!Number.isInteger(version)) throw new PgferryError("protocol", `SHOW server_version_num returned ${JSON.stringify(result.rows[0])}`);
    return version;
  }

  /** Standby status update: what we have received (write) and what is durable on the target (flush). */
  sendStatus(write: bigint, flush: bigint, replyRequested = false): void {
    const message = Buffer.alloc(34);
    message[0] = 0x72; // 'r'
    message.writeBigUInt64BE(write, 1);
    message.writeBigUInt64BE(flush, 9);
    message.writeBigUInt64BE(flush, 17);
    message.writeBigUInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
    message[33] = replyRequested ? 1 : 0;
    this.raw.sendCopyFromChunk(message);
  }

  pause(): void {
    this.raw.stream.pause();
  }

  resume(): void {
    this.raw.stream.resume();
  }

  /**
   * Ends the connection. A socket paused for backpressure would never see the server's close, and a
   * peer that does not answer would hold `end()` forever: resume first, and destroy the socket if the
   * polite end has not finished within `graceMs` (the streaming promise then settles either way).
   */
  async close(graceMs = 5000): Promise<void> {
    const raw = this.raw;
    raw.stream.resume();
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        raw.stream.destroy();
        resolve();
      }, graceMs);
    });
    await Promise.race([this.client.end().catch(() => undefined), forced]);
    clearTimeout(timer);
  }
}
