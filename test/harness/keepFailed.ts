/**
 * A setup file of every integration test file: remembers that a test of the file failed, so that
 * its databases are kept for a look when PGFERRY_KEEP_FAILED=1 (see databases.ts).
 */
import { afterEach } from "vitest";
import { markFileFailed } from "./databases.js";

afterEach(({ task }) => {
  if (task.result?.state === "fail") markFileFailed();
});
