/**
 * The bench's maxrate scenario (tools/bench/rateSearch.ts) calls a window sustainable only when the
 * system kept up: every heartbeat arrived and the lag did not grow across the window. A system that
 * falls behind slowly can still show a p99 under the goal in a short window; its growth must be seen.
 */
import { describe, expect, it } from "vitest";
import { GROWTH_LIMIT_SECONDS, judgeLag } from "../../tools/bench/rateSearch.js";

/** `n` heartbeats of lag `base` + `slope` × i (seconds), with a fixed ±5 ms jitter. */
function lags(n: number, base: number, slope: number): number[] {
  return Array.from({ length: n }, (_, i) => base + slope * i + (i % 2 === 0 ? 0.005 : -0.005));
}

describe("judgeLag", () => {
  it("a steady lag with jitter kept up", () => {
    const verdict = judgeLag(lags(200, 0.02, 0));
    expect(verdict.keptUp).toBe(true);
    expect(Math.abs(verdict.growthSeconds)).toBeLessThan(0.011);
  });

  it("a lag rising through the window fell behind, though every value is under 100 ms", () => {
    // 200 heartbeats 50 ms apart, the lag rising 4 ms/s: 20 ms to 60 ms.
    const samples = lags(200, 0.02, 0.004 * 0.05);
    expect(Math.max(...samples)).toBeLessThan(0.1);
    const verdict = judgeLag(samples);
    expect(verdict.growthSeconds).toBeGreaterThan(GROWTH_LIMIT_SECONDS);
    expect(verdict.keptUp).toBe(false);
  });

  it("one stall in the last quarter is not growth", () => {
    const samples = lags(200, 0.02, 0);
    for (let i = 170; i < 175; i += 1) samples[i] = 0.4;
    expect(judgeLag(samples).keptUp).toBe(true);
  });

  it("a heartbeat that never arrived did not keep up", () => {
    const samples: (number | undefined)[] = lags(200, 0.02, 0);
    samples[120] = undefined;
    expect(judgeLag(samples).keptUp).toBe(false);
  });
});
