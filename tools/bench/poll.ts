/** Waiting on a condition with a deadline (the bench polls databases; it never sleeps blindly). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface PollOptions {
  /** What is awaited, for the timeout error. */
  what: string;
  timeoutMs: number;
  intervalMs: number;
  /** Checked on every round: throw to abort the wait (e.g. the process under test died). */
  guard?: () => void | Promise<void>;
}

/** Calls `check` until it returns a value other than undefined; returns that value. */
export async function pollUntil<T>(check: () => Promise<T | undefined>, options: PollOptions): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    await options.guard?.();
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${(options.timeoutMs / 1000).toFixed(0)} s waiting for ${options.what}`);
    await sleep(options.intervalMs);
  }
}

export function seconds(fromMs: number, toMs = performance.now()): number {
  return (toMs - fromMs) / 1000;
}
