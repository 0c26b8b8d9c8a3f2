/**
 * The bounded hand-off between the replication reader and the applier. Measured in bytes, so a few
 * huge rows weigh as much as many small ones. Over `highWater` the reader is told to pause (it stops
 * reading the socket, and TCP backpressure reaches the walsender); under half of it, to resume.
 */
export class ChangeQueue<T> {
  private items: ({ value: T; bytes: number } | undefined)[] = [];
  private head = 0;
  private bytesHeld = 0;
  private waiter: (() => void) | undefined;
  private closed = false;
  private paused = false;

  constructor(
    private readonly highWater: number,
    private readonly onPressure: (pause: boolean) => void,
  ) {}

  get bytes(): number {
    return this.bytesHeld;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T, bytes: number): void {
    this.items.push({ value: item, bytes });
    this.bytesHeld += bytes;
    if (!this.paused && this.bytesHeld > this.highWater) {
      this.paused = true;
      this.onPressure(true);
    }
    this.wake();
  }

  /** Next item, or undefined when the queue is closed and empty. */
  async take(): Promise<T | undefined> {
    while (this.length === 0) {
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => { this.waiter = resolve; });
    }
    const entry = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.bytesHeld -= entry?.bytes ?? 0;
    if (this.paused && this.bytesHeld < this.highWater / 2) {
      this.paused = false;
      this.onPressure(false);
    }
    return entry?.value;
  }

  /** No more items will come; `take` drains what is left, then returns undefined. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
