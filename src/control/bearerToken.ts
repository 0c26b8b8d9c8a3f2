/**
 * control/ — the HTTP control plane: health, readiness, status, metrics, the status page and the resync API; it takes callbacks and never imports the pipeline.
 *
 * The admin token check for mutating endpoints. Both sides are hashed first so the comparison is
 * constant-time whatever the lengths (timingSafeEqual needs equal lengths and would leak them).
 */
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();

/** Whether an `Authorization` header carries `Bearer <token>`. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  const equal = timingSafeEqual(digest(match?.[1] ?? ""), digest(token));
  return match !== null && equal;
}
