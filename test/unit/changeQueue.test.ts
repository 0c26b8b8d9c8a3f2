/**
 * The bounded queue between the replication reader and the apply loop (docs/design.md, rule 5):
 * the reader is paused once the bytes held pass the high-water mark and resumed once they drain
 * under half of it; items come out in the order they went in; a closed queue drains, then ends.
 */
import { describe, expect, it } from "vitest";
import { ChangeQueue } from "../../src/pipeline/changeQueue.js";

/** Every promise callback pending now has run (no time passes). */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(highWater: number) {
  const pressure: boolean[] = [];
  const queue = new ChangeQueue<number>(highWater, (pause) => pressure.push(pause));
  return { queue, pressure };
}

describe("backpressure", () => {
  it("pauses once the bytes held pass the high-water mark, once", () => {
    const { queue, pressure } = setup(1000);
    queue.push(1, 400);
    queue.push(2, 600);
    expect(queue.bytes).toBe(1000);
    expect(pressure).toEqual([]); // at the mark, not over it
    queue.push(3, 1);
    expect(pressure).toEqual([true]);
    queue.push(4, 5000);
    expect(pressure).toEqual([true]); // already paused: not told again
    expect(queue.bytes).toBe(6001);
  });

  it("resumes only when the bytes held drain under half the high-water mark", async () => {
    const { queue, pressure } = setup(1000);
    for (const [item, bytes] of [[1, 600], [2, 300], [3, 200], [4, 100]] as const) queue.push(item, bytes);
    expect(pressure).toEqual([true]);
    await queue.take(); // 600 left: paused still
    await queue.take(); // 300 left: under 500
    expect(queue.bytes).toBe(300);
    expect(pressure).toEqual([true, false]);
    await queue.take();
    await queue.take();
    expect(pressure).toEqual([true, false]);
    expect(queue.bytes).toBe(0);
  });

  it("stays paused while the bytes held are between half the mark and the mark", async () => {
    const { queue, pressure } = setup(1000);
    queue.push(1, 100);
    queue.push(2, 1000);
    expect(pressure).toEqual([true]);
    await queue.take(); // 1000 left: at the mark
    expect(pressure).toEqual([true]);
    queue.push(3, 1);
    expect(pressure).toEqual([true]); // still paused, not paused again
    await queue.take();
    expect(pressure).toEqual([true, false]);
  });

  it("pauses again after a resume when it fills up again", async () => {
    const { queue, pressure } = setup(100);
    queue.push(1, 200);
    await queue.take();
    queue.push(2, 200);
    expect(pressure).toEqual([true, false, true]);
  });
});

describe("ordering and the end", () => {
  it("hands items out in the order they were pushed, across its internal compaction", async () => {
    const { queue } = setup(1 << 30);
    const n = 10_000;
    for (let i = 0; i < n; i += 1) queue.push(i, 1);
    const out: number[] = [];
    for (let i = 0; i < n / 2; i += 1) out.push((await queue.take())!);
    for (let i = n; i < n + 100; i += 1) queue.push(i, 1);
    while (queue.length > 0) out.push((await queue.take())!);
    expect(out).toEqual(Array.from({ length: n + 100 }, (_, i) => i));
    expect(queue.bytes).toBe(0);
  });

  it("wakes a waiting taker when an item arrives", async () => {
    const { queue } = setup(1000);
    let taken: number | undefined | "waiting" = "waiting";
    void queue.take().then((item) => { taken = item; });
    await settled();
    expect(taken).toBe("waiting");
    queue.push(7, 1);
    await settled();
    expect(taken).toBe(7);
  });

  it("drains what is left after close, then ends", async () => {
    const { queue } = setup(1000);
    queue.push(1, 1);
    queue.push(2, 1);
    queue.close();
    expect(await queue.take()).toBe(1);
    expect(await queue.take()).toBe(2);
    expect(await queue.take()).toBeUndefined();
  });

  it("ends a waiting taker on close", async () => {
    const { queue } = setup(1000);
    let taken: number | undefined | "waiting" = "waiting";
    void queue.take().then((item) => { taken = item; });
    queue.close();
    await settled();
    expect(taken).toBeUndefined();
  });
});
