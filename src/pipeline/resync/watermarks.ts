/**
 * Resync watermarks: logical decoding messages (`pg_logical_emit_message`, transactional) that mark
 * where a chunk's SELECT sits in the change stream (DBLog / Debezium incremental snapshots). The
 * attempt nonce keeps a watermark replayed after a restart from matching a new chunk.
 */
export const WATERMARK_PREFIX = "pgferry-resync";

export interface Watermark {
  resync: string;
  /** The source table (`schema.table` as in the config). */
  table: string;
  attempt: string;
  chunk: number;
  mark: "low" | "high";
}

export function encodeWatermark(mark: Watermark): string {
  return JSON.stringify(mark);
}

/** The watermark in a message, or null when the content is not one of ours (another tool's message, an old format). */
export function decodeWatermark(content: Buffer): Watermark | null {
  try {
    const value = JSON.parse(content.toString("utf8")) as Partial<Watermark>;
    if (typeof value.resync !== "string" || typeof value.table !== "string" || typeof value.attempt !== "string" || typeof value.chunk !== "number") return null;
    if (value.mark !== "low" && value.mark !== "high") return null;
    return value as Watermark;
  } catch {
    return null;
  }
}

export function windowId(mark: Pick<Watermark, "resync" | "attempt" | "chunk">): string {
  return `${mark.resync}/${mark.attempt}/${mark.chunk}`;
}
