/**
 * What may be acknowledged to the source when the apply session commits asynchronously
 * (`apply.synchronousCommit: off`, as native subscriptions do by default). COMMIT then returns before
 * its WAL is flushed, so a target crash can lose a transaction already applied and visible: its
 * checkpoint goes with it, and pgferry resumes from the one before, which is only exact if the
 * source still has the WAL after it. So the source is told a position only once the target's WAL is
 * flushed past the commit that recorded it (docs/design.md, rule 2), as the native apply worker maps
 * remote to local LSNs and reports the local flush.
 *
 * Each asynchronous commit is recorded with where its WAL ends on the target; each flush position
 * learned (returned with a later commit, or read while the stream is quiet) releases the commits it
 * has passed, in order.
 */
export class FlushedCommits {
  /** Commits not known to be flushed, oldest first: their WAL end on the target, and the source position each makes durable. */
  private readonly waiting: { commitEnd: bigint; sourceEnd: bigint }[] = [];

  /** True while a committed source position is not yet durable on the target. */
  get pending(): boolean {
    return this.waiting.length > 0;
  }

  /**
   * An asynchronous commit returned: `sourceEnd` is durable once the target's WAL is flushed to
   * `commitEnd`; `flushed` is how far it was as the commit returned. Returns the newest source
   * position now durable, if this made one durable.
   */
  committed(sourceEnd: bigint, wal: { commitEnd: bigint; flushed: bigint }): bigint | undefined {
    this.waiting.push({ commitEnd: wal.commitEnd, sourceEnd });
    return this.flushed(wal.flushed);
  }

  /** The target's WAL is flushed to `flushed`: the newest source position that made durable, if any. */
  flushed(flushed: bigint): bigint | undefined {
    let durable: bigint | undefined;
    while (this.waiting.length > 0 && this.waiting[0]!.commitEnd <= flushed) durable = this.waiting.shift()!.sourceEnd;
    return durable;
  }
}
