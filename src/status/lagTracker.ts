/**
 * Replication lag from two moving positions: how far the source's WAL is (polled, or told by a
 * keepalive) and how far pgferry has applied (the last committed checkpoint, or the slot's confirmed
 * flush position, which pgferry only advances past applied work when nothing received is pending).
 * No I/O: fed by the monitor, read at scrape and request time.
 *
 * Lag in seconds bounds the age of the oldest change not yet applied from above: such a change was
 * committed after the last applied transaction, and after the latest moment at which the source's
 * WAL position was seen that pgferry has since applied through. So it is `now - max(those two)`
 * while behind, and 0 when the applied position has reached the latest source position seen.
 */
/** Source positions remembered until applied; older ones are dropped first (which only overstates lag). */
const MAX_OBSERVATIONS = 1_000;

export class LagTracker {
  private source: bigint | undefined;
  private applied: bigint | undefined;
  private commitTime: number | undefined;
  private caughtUpAt: number | undefined;
  /** Lower bound when neither a commit nor a caught-up moment is known: the pipeline's creation. */
  private origin: number | undefined;
  /**
   * Source positions with when they were seen, not yet applied. Once the applied position passes
   * one, pgferry was caught up with the source as of that moment — even if the source has written
   * more WAL since (other databases, unpublished tables), which is why the latest position alone
   * would not do.
   */
  private readonly pending: { lsn: bigint; at: number }[] = [];

  /** The source's WAL position as observed at `at` (ms). */
  sourcePosition(lsn: bigint, at: number): void {
    if (this.source !== undefined && lsn <= this.source) return;
    this.source = lsn;
    this.pending.push({ lsn, at });
    if (this.pending.length > MAX_OBSERVATIONS) this.pending.shift();
    this.settle();
  }

  /** A position up to which everything is applied (a checkpoint's end, the slot's confirmed flush). */
  appliedPosition(lsn: bigint, commitTime?: Date | null): void {
    if (this.applied === undefined || lsn > this.applied) this.applied = lsn;
    if (commitTime) this.commitTime = Math.max(this.commitTime ?? 0, commitTime.getTime());
    this.settle();
  }

  /** When the pipeline's slot was created: nothing unapplied can be older. */
  pipelineCreated(at: Date): void {
    this.origin = at.getTime();
  }

  get sourceLsn(): bigint | undefined {
    return this.source;
  }

  get appliedLsn(): bigint | undefined {
    return this.applied;
  }

  bytes(): number | undefined {
    if (this.source === undefined || this.applied === undefined) return undefined;
    return this.source > this.applied ? Number(this.source - this.applied) : 0;
  }

  seconds(now: number): number | undefined {
    const bytes = this.bytes();
    if (bytes === undefined) return undefined;
    if (bytes === 0) return 0;
    const since = Math.max(this.commitTime ?? -Infinity, this.caughtUpAt ?? -Infinity, this.origin ?? -Infinity);
    if (since === -Infinity) return undefined;
    return Math.max(0, (now - since) / 1000);
  }

  private settle(): void {
    const applied = this.applied;
    if (applied === undefined) return;
    while (this.pending.length > 0 && this.pending[0]!.lsn <= applied) {
      const { at } = this.pending.shift()!;
      this.caughtUpAt = Math.max(this.caughtUpAt ?? at, at);
    }
  }
}
