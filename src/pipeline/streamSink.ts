/**
 * The pipeline's side of the stream reader (source/streamReader.ts): its changes go into the change
 * queue, weighed for the queue's byte limit, after the open resync windows have noted their keys;
 * its logical messages that are resync watermarks open a chunk's window (low) or put the chunk's
 * rows and statements into the queue at that point of the stream (high).
 */
import type { SourceChange, SourceCommit, SourceTruncate } from "../plan/changes.js";
import type { ChangeSink, LogicalMessageListener } from "../source/streamReader.js";
import type { ChangeQueue } from "./changeQueue.js";
import type { ResyncWindows } from "./resync/resyncWindows.js";
import { decodeWatermark, WATERMARK_PREFIX } from "./resync/watermarks.js";
import { changeBytes, type StreamEvent } from "./streamEvents.js";

export class QueueSink implements ChangeSink, LogicalMessageListener {
  /** `windows`: the open resync windows, when resyncs are attached. */
  constructor(
    private readonly queue: ChangeQueue<StreamEvent>,
    private readonly windows?: ResyncWindows,
  ) {}

  change(change: SourceChange): void {
    this.windows?.track(change.plan, change);
    this.queue.push(change, changeBytes(change));
  }

  truncate(truncate: SourceTruncate): void {
    this.queue.push(truncate, 128);
  }

  commit(commit: SourceCommit): void {
    this.queue.push(commit, 64);
  }

  message(prefix: string, content: Buffer): void {
    const windows = this.windows;
    if (prefix !== WATERMARK_PREFIX || !windows) return;
    const mark = decodeWatermark(content);
    if (!mark) return;
    if (mark.mark === "low") {
      windows.onLow(mark);
      return;
    }
    const chunk = windows.onHigh(mark);
    if (!chunk) return; // a watermark from before a restart: its resync resumes with a new attempt
    for (const change of chunk.changes) this.queue.push(change, changeBytes(change));
    this.queue.push(chunk.end, 256);
  }
}
