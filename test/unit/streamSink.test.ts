import { describe, expect, it } from "vitest";
import type { Statement } from "../../src/apply/types.js";
import type { SourceChange } from "../../src/plan/changes.js";
import type { TablePlan } from "../../src/plan/plan.js";
import { ChangeQueue } from "../../src/pipeline/changeQueue.js";
import { ResyncWindows } from "../../src/pipeline/resync/resyncWindows.js";
import { encodeWatermark, WATERMARK_PREFIX, type Watermark } from "../../src/pipeline/resync/watermarks.js";
import { changeBytes, type StreamEvent } from "../../src/pipeline/streamEvents.js";
import { QueueSink } from "../../src/pipeline/streamSink.js";
import { table } from "../fixtures/plans.js";

const ITEMS: TablePlan = { id: "public.items", source: table("public.items", [], ["id"]), sourceColumns: ["id", "v"], keyInputs: [0], edges: [] };
const PROGRESS: Statement = { text: "SELECT 'progress'", values: [], rows: 0, table: "public.items", op: "update" };
const MARK: Omit<Watermark, "mark"> = { resync: "r1", table: "public.items", attempt: "a1", chunk: 0 };

function watermark(mark: "low" | "high"): Buffer {
  return Buffer.from(encodeWatermark({ ...MARK, mark }), "utf8");
}

function setup(withWindows = true) {
  const pushed: { event: StreamEvent; bytes: number }[] = [];
  const queue = new ChangeQueue<StreamEvent>(1 << 30, () => undefined);
  const original = queue.push.bind(queue);
  queue.push = (event, bytes) => {
    pushed.push({ event, bytes });
    original(event, bytes);
  };
  const windows = withWindows ? new ResyncWindows() : undefined;
  windows?.register({ mark: MARK, plan: ITEMS, rows: [["1", "chunk"], ["2", "chunk"]], lo: null, hi: ["2"], final: false, progress: () => PROGRESS, onApplied: () => undefined });
  return { pushed, sink: new QueueSink(queue, windows) };
}

const update = (id: string, v: string): SourceChange => ({ type: "change", plan: ITEMS, op: "update", old: null, oldIsFullRow: false, new: [id, v] });

describe("QueueSink", () => {
  it("queues changes, truncates and commits with their weights", () => {
    const { pushed, sink } = setup(false);
    const change = update("1", "x");
    const commit = { type: "commit", commitLsn: 5n, endLsn: 6n, commitTime: new Date(0) } as const;
    sink.change(change);
    sink.truncate({ type: "truncate", plans: [ITEMS] });
    sink.commit(commit);
    expect(pushed).toEqual([
      { event: change, bytes: changeBytes(change) },
      { event: { type: "truncate", plans: [ITEMS] }, bytes: 128 },
      { event: commit, bytes: 64 },
    ]);
  });

  it("puts a resync chunk's rows the stream did not touch, then its statements, at its high watermark", () => {
    const { pushed, sink } = setup();
    sink.message(WATERMARK_PREFIX, watermark("low"));
    sink.change(update("1", "stream"));
    sink.message(WATERMARK_PREFIX, watermark("high"));
    expect(pushed.map((p) => p.event)).toEqual([
      update("1", "stream"),
      { ...update("2", "chunk"), resync: true },
      { type: "statements", statements: [PROGRESS], onApplied: expect.any(Function) as unknown },
    ]);
  });

  it("ignores other prefixes, content that is not a watermark, unknown chunks, and watermarks without resyncs", () => {
    const { pushed, sink } = setup();
    sink.message("another-tool", watermark("low"));
    sink.message(WATERMARK_PREFIX, Buffer.from("not json"));
    sink.message(WATERMARK_PREFIX, Buffer.from(encodeWatermark({ ...MARK, attempt: "before-restart", mark: "high" })));
    // Without its low watermark the window never opened: the high one is a chunk from before a restart.
    sink.message(WATERMARK_PREFIX, watermark("high"));
    const none = setup(false);
    none.sink.message(WATERMARK_PREFIX, watermark("low"));
    none.sink.message(WATERMARK_PREFIX, watermark("high"));
    expect(pushed).toEqual([]);
    expect(none.pushed).toEqual([]);
  });
});
