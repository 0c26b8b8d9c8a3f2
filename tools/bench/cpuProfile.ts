/**
 * Reads a V8 `.cpuprofile` (node --cpu-prof) and lists the functions with the most self time, the
 * first place to look when pgferry is slow somewhere.
 */
import { readFile } from "node:fs/promises";
import { relative } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  function: string;
  location: string;
  selfMs: number;
  selfPercent: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Share of samples spent idle (waiting on I/O). */
  idlePercent: number;
  top: HotSpot[];
}

export async function summarizeProfile(file: string, limit = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { frame: ProfileNode["callFrame"]; us: number }>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    const frame = byId.get(id)?.callFrame;
    if (!frame) return;
    if (frame.functionName === "(idle)") idle += us;
    const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}`;
    const entry = self.get(key) ?? { frame, us: 0 };
    entry.us += us;
    self.set(key, entry);
  });
  const top = [...self.values()]
    .filter((e) => e.frame.functionName !== "(idle)")
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map(({ frame, us }) => ({
      function: frame.functionName || "(anonymous)",
      location: frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : "",
      selfMs: us / 1000,
      selfPercent: total === 0 ? 0 : (100 * us) / total,
    }));
  return { file, totalMs: total / 1000, idlePercent: total === 0 ? 0 : (100 * idle) / total, top };
}

function shortUrl(url: string): string {
  const path = url.replace(/^file:\/\//, "");
  const nodeModules = path.lastIndexOf("node_modules/");
  if (nodeModules >= 0) return path.slice(nodeModules);
  return path.startsWith("/") ? relative(process.cwd(), path) : path;
}
