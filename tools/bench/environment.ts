/** What a result is stamped with, so figures from different machines and versions are not mixed up. */
import { execFileSync } from "node:child_process";
import { cpus, loadavg, platform, release, totalmem } from "node:os";
import { withClient } from "./db.js";

export interface BenchEnvironment {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  os: string;
  node: string;
  postgres: string;
  pgvector: string;
  pgferry: string;
  /** The checked-out commit (`-dirty` with uncommitted changes), when git is at hand. */
  gitCommit: string;
  /** 1-minute load average when the bench started and ended: other work on the machine skews figures. */
  loadAverage: { start: number; end: number };
}

/** The 1-minute load average now. */
export function loadAverageNow(): number {
  return Number(loadavg()[0]!.toFixed(2));
}

function gitCommit(): string {
  try {
    const options = { cwd: import.meta.dirname, encoding: "utf8" as const, stdio: ["ignore", "pipe", "ignore"] as ["ignore", "pipe", "ignore"] };
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], options).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], options).trim().length > 0;
    return dirty ? `${head}-dirty` : head;
  } catch {
    return "unknown";
  }
}

export async function describeEnvironment(sourceUrl: string, pgferryVersion: string, loadAtStart: number): Promise<BenchEnvironment> {
  const { postgres, pgvector } = await withClient(sourceUrl, async (c) => {
    const { rows } = await c.query<{ postgres: string; pgvector: string | null }>(
      "SELECT current_setting('server_version') AS postgres, (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector",
    );
    return { postgres: rows[0]!.postgres, pgvector: rows[0]!.pgvector ?? "not installed" };
  });
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    memoryBytes: totalmem(),
    os: `${platform()} ${release()}`,
    node: process.version,
    postgres,
    pgvector,
    pgferry: pgferryVersion,
    gitCommit: gitCommit(),
    loadAverage: { start: loadAtStart, end: loadAverageNow() },
  };
}
