/**
 * A fixed-capacity buffer that keeps the latest `capacity` items, oldest first: the status page's
 * last hour of samples (control/pipelineMonitor.ts), in bounded memory however long pgferry runs.
 */
export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  /** Where the next item goes. */
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ring buffer capacity must be a positive integer, not ${capacity}`);
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Adds an item; when full, the oldest one goes. */
  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** The newest item, if any. */
  last(): T | undefined {
    return this.count === 0 ? undefined : this.items[(this.next - 1 + this.capacity) % this.capacity];
  }

  /** The items, oldest first. */
  toArray(): T[] {
    const start = (this.next - this.count + this.capacity) % this.capacity;
    return Array.from({ length: this.count }, (_, i) => this.items[(start + i) % this.capacity] as T);
  }
}
