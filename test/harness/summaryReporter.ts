/**
 * Prints one plain closing line (`vitest: N passed, N failed, N skipped`) that CI tooling can read.
 * It runs in onFinished, after the default reporter's summary, so it is the last line of the run.
 */
import type { Reporter, RunnerTask, RunnerTestFile } from "vitest/node";

function count(tasks: readonly RunnerTask[], counts: Record<"passed" | "failed" | "skipped", number>): void {
  for (const task of tasks) {
    if (task.type === "suite") count(task.tasks, counts);
    else if (task.result?.state === "pass") counts.passed += 1;
    else if (task.result?.state === "fail") counts.failed += 1;
    else counts.skipped += 1;
  }
}

export default class SummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = [], errors: unknown[] = []): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    count(files, counts);
    // A file that failed to load has no tests; count it as a failure so the line never says green.
    counts.failed += files.filter((f) => f.result?.state === "fail" && f.tasks.length === 0).length + errors.length;
    setImmediate(() => process.stdout.write(`vitest: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`));
  }
}
