/**
 * CPU time spent by the processes doing a replication (the pgferry process, the source walsender,
 * the target backend applying), from Linux /proc. On a 2-core machine this shows where a phase's
 * wall time goes: decoding on the source, pgferry itself, or applying on the target.
 */
import { readFileSync } from "node:fs";
import { withClient } from "./db.js";

/** USER_HZ: clock ticks per second in /proc/<pid>/stat; 100 on every mainstream Linux build. */
const TICKS_PER_SECOND = 100;

/** user + system CPU seconds of `pid` so far, or undefined when it is gone (or not Linux). */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Sum of CPU seconds of the server processes in `url`'s cluster matching `where` (a pg_stat_activity filter). */
export async function serverCpuSeconds(url: string, where: string, params: unknown[]): Promise<number> {
  const pids = await withClient(url, async (c) => (await c.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE ${where}`, params)).rows);
  return pids.reduce((sum, { pid }) => sum + (cpuSeconds(pid) ?? 0), 0);
}
