import { defineConfig } from "vitest/config";

// Two projects: pure-logic unit tests (no servers), and integration tests that share one pair of
// real PostgreSQL servers per run (started by the global setup), a fresh database per test file.
export default defineConfig({
  test: {
    reporters: ["default", "./test/harness/summaryReporter.ts"],
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/harness/globalSetup.ts"],
          // Marks a file whose test failed, so PGFERRY_KEEP_FAILED=1 keeps its databases.
          setupFiles: ["test/harness/keepFailed.ts"],
          // Integration tests wait on real servers; conditions are awaited with deadlines (waitFor).
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
