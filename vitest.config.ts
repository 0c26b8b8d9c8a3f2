import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/harness/globalSetup.ts"],
    // Integration tests wait on real servers; conditions are awaited with deadlines (waitFor).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ["default", "./test/harness/summaryReporter.ts"],
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
