/**
 * Waits for a condition with a deadline instead of sleeping: polls `probe` until `until(value)`
 * holds, and on timeout fails with the description and the last value seen.
 */
export interface WaitOptions<T> {
  description: string;
  until?: (value: T) => boolean;
  timeoutMs?: number;
  intervalMs?: number;
  /** Checked before each probe: a message ends the wait at once (a pipeline that failed will not get there). */
  failIf?: () => string | undefined;
}

export async function waitFor<T>(probe: () => Promise<T> | T, options: WaitOptions<T>): Promise<T> {
  const { description, until = (v: T) => Boolean(v), timeoutMs = 30_000, intervalMs = 50, failIf } = options;
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    const failed = failIf?.();
    if (failed !== undefined) throw new Error(`${failed} while waiting for ${description}`);
    try {
      last = await probe();
      lastError = undefined;
      if (until(last)) return last;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const seen = lastError ? `last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}` : `last value: ${JSON.stringify(last, bigintSafe)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description} (${seen})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
