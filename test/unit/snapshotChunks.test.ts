/**
 * How the snapshot cuts a heap into ctid ranges: by rows and by bytes (heap + TOAST), whichever asks
 * for more, and always so that every tuple falls in exactly one range.
 */
import { describe, expect, it } from "vitest";
import { splitRelation, type TidRange } from "../../src/pipeline/snapshotPhase.js";
import { tidRangeConditions, type Tid } from "../../src/plan/snapshotSql.js";
import { seededRandom } from "../harness/random.js";

const MiB = 1024 ** 2;
const limits = { rows: 250_000, bytes: 32 * MiB };

function before(a: Tid, b: Tid): boolean {
  return a.block < b.block || (a.block === b.block && a.offset < b.offset);
}

/** The ranges a tuple at `tid` falls in, as the SQL conditions read them. */
function rangesHolding(ranges: readonly TidRange[], tid: Tid): number {
  return ranges.filter((r) => (r.from === undefined || !before(tid, r.from)) && (r.to === undefined || before(tid, r.to))).length;
}

function expectExactCover(ranges: readonly TidRange[], pages: number): void {
  expect(ranges[0]?.from).toBeUndefined();
  expect(ranges.at(-1)?.to).toBeUndefined();
  for (let i = 1; i < ranges.length; i += 1) {
    expect(ranges[i]!.from).toEqual(ranges[i - 1]!.to);
    if (i > 1) expect(before(ranges[i - 1]!.from!, ranges[i]!.from!)).toBe(true);
  }
  // Every possible tuple (offsets 1..291) of the blocks around each bound, the first and last blocks
  // and one appended after the sizes were read, is in exactly one range.
  const blocks = new Set([0, pages, pages + 1, ...ranges.flatMap((r) => (r.from ? [r.from.block - 1, r.from.block, r.from.block + 1] : []))]);
  const misplaced: string[] = [];
  for (const block of [...blocks].filter((b) => b >= 0)) {
    for (let offset = 1; offset <= 291; offset += 1) {
      const holding = rangesHolding(ranges, { block, offset });
      if (holding !== 1) misplaced.push(`(${block},${offset}) in ${holding}`);
    }
  }
  expect(misplaced).toEqual([]);
}

describe("splitRelation", () => {
  it("cuts a wide table with few rows by bytes: 15k rows of 1536-d vectors (141 MB) make 5 chunks, not 1", () => {
    const ranges = splitRelation({ pages: 2000, rows: 15_000, bytes: 141 * 1024 * 1024 }, limits);
    expect(ranges).toHaveLength(5);
    expect(ranges.map((r) => r.from?.block)).toEqual([undefined, 400, 800, 1200, 1600]);
    expect(ranges.every((r) => r.from === undefined || r.from.offset === 0)).toBe(true);
    expectExactCover(ranges, 2000);
  });

  it("cuts a narrow table by rows when that asks for more chunks", () => {
    const ranges = splitRelation({ pages: 3000, rows: 1_000_000, bytes: 3000 * 8192 }, limits);
    expect(ranges).toHaveLength(4);
    expectExactCover(ranges, 3000);
  });

  it("splits pages by line pointer when the bytes are in TOAST and the heap has fewer pages than chunks", () => {
    // 300 rows of 16 kB each: two heap pages of TOAST pointers, 4.7 MB of TOAST.
    const ranges = splitRelation({ pages: 2, rows: 300, bytes: 300 * 16_384 }, { rows: 250_000, bytes: 256 * 1024 });
    expect(ranges).toHaveLength(19);
    expect(ranges.some((r) => r.from !== undefined && r.from.offset > 0)).toBe(true);
    expectExactCover(ranges, 2);
  });

  it("keeps a small, empty or never analysed table in one open range", () => {
    expect(splitRelation({ pages: 10, rows: 500, bytes: 81_920 }, limits)).toEqual([{ from: undefined, to: undefined, bytes: 81_920, rows: 500 }]);
    expect(splitRelation({ pages: 0, rows: 0, bytes: 0 }, limits)).toHaveLength(1);
    expect(splitRelation({ pages: 0, rows: null, bytes: 8192 }, { rows: 1, bytes: 1 })).toHaveLength(1);
    // Never analysed (reltuples -1): about 50 rows a page are assumed.
    expect(splitRelation({ pages: 100, rows: null, bytes: 100 * 8192 }, { rows: 1000, bytes: 32 * MiB })).toHaveLength(5);
  });

  it("never makes more chunks than the heap holds tuples", () => {
    const ranges = splitRelation({ pages: 1, rows: 3, bytes: 90 * MiB }, limits);
    expect(ranges).toHaveLength(3);
    expectExactCover(ranges, 1);
  });

  it("covers every tuple exactly once for any estimate", () => {
    const random = seededRandom(15);
    for (let i = 0; i < 60; i += 1) {
      const pages = Math.floor(random() * 40);
      const rows = random() < 0.2 ? null : Math.floor(random() * pages * 120);
      const bytes = Math.floor(random() * 64 * MiB);
      const ranges = splitRelation({ pages, rows, bytes }, { rows: 1 + Math.floor(random() * 500), bytes: 1 + Math.floor(random() * 8 * MiB) });
      expectExactCover(ranges, pages);
    }
  });
});

describe("tidRangeConditions", () => {
  it("bounds a chunk by ctid, leaving an open end out", () => {
    expect(tidRangeConditions(undefined, undefined)).toEqual([]);
    expect(tidRangeConditions({ block: 3, offset: 0 }, { block: 7, offset: 12 })).toEqual(["s.ctid >= '(3,0)'::tid", "s.ctid < '(7,12)'::tid"]);
    expect(tidRangeConditions({ block: 7, offset: 12 }, undefined)).toEqual(["s.ctid >= '(7,12)'::tid"]);
  });
});
