/**
 * Asynchronous commits are acknowledged only once the target's WAL flush has passed them, in order,
 * whichever way the flush position is learned.
 */
import { describe, expect, it } from "vitest";
import { FlushedCommits } from "../../src/pipeline/flushedCommits.js";

describe("FlushedCommits", () => {
  it("releases a commit only once the flush reaches its WAL end", () => {
    const commits = new FlushedCommits();
    expect(commits.committed(100n, { commitEnd: 5000n, flushed: 4999n })).toBeUndefined();
    expect(commits.pending).toBe(true);
    expect(commits.flushed(4999n)).toBeUndefined();
    expect(commits.flushed(5000n)).toBe(100n);
    expect(commits.pending).toBe(false);
    expect(commits.flushed(9000n)).toBeUndefined();
  });

  it("releases several commits at once, up to the newest one flushed, and keeps the rest", () => {
    const commits = new FlushedCommits();
    commits.committed(100n, { commitEnd: 1000n, flushed: 0n });
    commits.committed(200n, { commitEnd: 2000n, flushed: 0n });
    // A later commit returns with the flush past the first two.
    expect(commits.committed(300n, { commitEnd: 3000n, flushed: 2500n })).toBe(200n);
    expect(commits.pending).toBe(true);
    expect(commits.flushed(2999n)).toBeUndefined();
    expect(commits.flushed(3000n)).toBe(300n);
  });

  it("releases a commit at once when it returns already flushed (the WAL writer was quicker)", () => {
    const commits = new FlushedCommits();
    expect(commits.committed(100n, { commitEnd: 1000n, flushed: 1200n })).toBe(100n);
    expect(commits.pending).toBe(false);
  });
});
