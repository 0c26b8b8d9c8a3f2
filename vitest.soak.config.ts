import { defineConfig } from "vitest/config";

// `npm run soak`: long runs under faults, never part of `npm test` (PGFERRY_SOAK_MINUTES, default 10).
export default defineConfig({
  test: {
    include: ["test/soak/**/*.soak.ts"],
    testTimeout: 24 * 60 * 60 * 1000,
    hookTimeout: 300_000,
    pool: "forks",
    reporters: ["default"],
  },
});
