/**
 * The floor for a snapshot: a raw binary `COPY TO | COPY FROM` pipe per table, two tables at a
 * time, largest first, each table in its own durable target transaction. No snapshot export, no
 * state, no transformation: what moving the bytes costs on this machine.
 */
import { pipeline as pipe } from "node:stream/promises";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { connect, quoteIdent } from "./db.js";

export interface PipeTable {
  /** Unqualified name, in `public` on both sides. */
  name: string;
  bytes: number;
}

export async function binaryCopyPipe(sourceUrl: string, targetUrl: string, tables: readonly PipeTable[], concurrency = 2): Promise<number> {
  const queue = [...tables].sort((a, b) => b.bytes - a.bytes);
  let rows = 0;
  const worker = async () => {
    const source = await connect(sourceUrl, "pgferry-bench-pipe");
    const target = await connect(targetUrl, "pgferry-bench-pipe");
    try {
      for (let table = queue.shift(); table; table = queue.shift()) {
        const name = `public.${quoteIdent(table.name)}`;
        // COPY of a partitioned table needs the SELECT form on the way out; COPY FROM routes rows.
        const ingest = target.query(copyFrom(`COPY ${name} FROM STDIN (FORMAT binary)`));
        await pipe(source.query(copyTo(`COPY (SELECT * FROM ${name}) TO STDOUT (FORMAT binary)`)), ingest);
        rows += ingest.rowCount ?? 0;
      }
    } finally {
      await Promise.all([source.end(), target.end()].map((p) => p.catch(() => undefined)));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return rows;
}
