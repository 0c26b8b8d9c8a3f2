/** The maxrate scenario over both systems (rateSearch.ts runs one system's windows), and its summary for the report. */
import type { MaxRateSummary, RateWindow } from "./rateSearch.js";
import type { SystemResult, SystemRun } from "./systemRun.js";

/** The maxrate scenario over the systems (native, pgferry): the sources' rates first, then each system's search at the common rate. */
export async function runMaxRate(runs: readonly SystemRun[], checkInterrupted: () => void): Promise<void> {
  for (const run of runs) {
    checkInterrupted();
    await run.sourceMax();
  }
  const rates = runs.map((r) => r.result.maxRate?.source?.achievedTps).filter((v): v is number => v !== undefined && v > 0);
  if (rates.length === 0) return;
  const common = Math.round(Math.min(...rates));
  for (const run of runs) {
    checkInterrupted();
    await run.rateSearch(common);
  }
}

export function maxRateSummary(pgferry: SystemResult, native: SystemResult): MaxRateSummary | undefined {
  const [p, n] = [pgferry.maxRate, native.maxRate];
  const common = p?.atSourceMax?.targetTps ?? n?.atSourceMax?.targetTps;
  if (common === undefined) return undefined;
  const p99 = (w: RateWindow | undefined) => (w === undefined || w.heartbeatsSeen === 0 ? undefined : w.lagSeconds.p99 * 1000);
  const defined = <T extends Record<string, number | undefined>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  return {
    sourceTps: common,
    sourceTpsWith: defined({ pgferry: p?.source?.achievedTps, native: n?.source?.achievedTps }),
    ...defined({ pgferryTps: p?.maxSustainedTps, nativeTps: n?.maxSustainedTps }),
    p99AtSourceMaxMs: defined({ pgferry: p99(p?.atSourceMax), native: p99(n?.atSourceMax) }),
  };
}
