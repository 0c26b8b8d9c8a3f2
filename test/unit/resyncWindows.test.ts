/**
 * The stream side of a resync's watermark windows: rows of a chunk whose keys the stream changed
 * between the chunk's low and high watermark are dropped from it (the stream's change is newer);
 * the rest are written at the high watermark, in chunk order, followed by the range repair (for
 * targets keyed by the source key) and the progress statement.
 */
import { describe, expect, it, vi } from "vitest";
import type { Statement } from "../../src/apply/types.js";
import type { SourceRow } from "../../src/plan/changes.js";
import type { TablePlan } from "../../src/plan/plan.js";
import { ResyncWindows, type RegisteredChunk } from "../../src/pipeline/resync/resyncWindows.js";
import type { Watermark } from "../../src/pipeline/resync/watermarks.js";
import { change, column, compilePlans, entry, table } from "../fixtures/plans.js";

const users = table("public.users", [column("id", "integer", { notNull: true }), column("email", "text")], ["id"]);
const orders = table("public.orders", [column("id", "integer", { notNull: true }), column("total", "numeric")], ["id"]);
const [usersPlan, ordersPlan] = compilePlans(
  [
    entry("public.users", "app.users"),
    // Keyed by a derived key: its key range cannot be repaired.
    entry("public.users", "app.user_refs", { passthrough: false, columns: { ref: { sql: "md5(id::text)::uuid" }, email: "email" } }),
    entry("public.orders", "app.orders"),
  ],
  [users, orders],
  [
    table("app.users", users.columns, ["id"]),
    table("app.user_refs", [column("ref", "uuid", { notNull: true }), column("email", "text")], ["ref"]),
    table("app.orders", orders.columns, ["id"]),
  ],
);

const userRow = (id: number): SourceRow => [String(id), `u${id}@example.com`];

/** One resync per table (its id), one attempt. */
function mark(table: string, chunk: number, which: "low" | "high"): Watermark {
  return { resync: `resync-${table}`, table, attempt: "a1", chunk, mark: which };
}

function chunk(plan: TablePlan, n: number, rows: SourceRow[], bounds: { lo: string[] | null; hi: string[] | null; final?: boolean }) {
  const progress = vi.fn((lastKey: string[] | null, count: number, final: boolean): Statement => ({
    text: `progress ${JSON.stringify(lastKey)} ${count} ${final}`, values: [], rows: 0, table: "_pgferry.resyncs", op: "update",
  }));
  const onApplied = vi.fn();
  const registered: RegisteredChunk = {
    mark: { resync: `resync-${plan.id}`, table: plan.id, attempt: "a1", chunk: n },
    plan, rows, lo: bounds.lo, hi: bounds.hi, final: bounds.final ?? false, progress, onApplied,
  };
  return { registered, progress, onApplied };
}

/** The source keys of the rows a window emits. */
const keysOf = (result: ReturnType<ResyncWindows["onHigh"]>) => result?.changes.map((c) => c.new?.[0]);

describe("a watermark window", () => {
  it("drops the chunk rows the stream changed between the low and high watermark", () => {
    const windows = new ResyncWindows();
    const c = chunk(usersPlan!, 1, [1, 2, 3, 4, 5].map(userRow), { lo: null, hi: ["5"] });
    windows.register(c.registered);
    windows.onLow(mark("public.users", 1, "low"));
    expect(windows.active).toBe(true);
    windows.track(usersPlan!, change(usersPlan!, "update", { new: ["2", "new@example.com"] }));
    windows.track(usersPlan!, change(usersPlan!, "delete", { old: ["4", null] }));
    // A key change: the old key (3) and the new one (9) are both the stream's now.
    windows.track(usersPlan!, change(usersPlan!, "update", { old: ["3", null], new: ["9", "x@example.com"] }));
    // Another table's change with the same key touches nothing here.
    windows.track(ordersPlan!, change(ordersPlan!, "update", { new: ["1", "10.00"] }));
    const result = windows.onHigh(mark("public.users", 1, "high"));
    expect(windows.active).toBe(false);

    expect(keysOf(result)).toEqual(["1", "5"]);
    expect(result!.changes[0]).toEqual({ type: "change", plan: usersPlan, op: "update", old: null, oldIsFullRow: false, new: userRow(1), resync: true });

    // The range repair for the target keyed by the source key (not for the derived key), then the progress.
    const [repair, progress, ...rest] = result!.end.statements;
    expect(rest).toEqual([]);
    expect(repair).toMatchObject({ table: "app.users", op: "delete" });
    expect(repair!.text).toContain("<=");
    const [hi, keep] = repair!.values as [string, string[]];
    expect(hi).toBe("5");
    // Rows neither in the chunk nor touched by the stream, within the range, are the ones repaired away.
    expect([...new Set(keep)].sort()).toEqual(["1", "2", "3", "4", "5", "9"]);
    expect(progress!.text).toBe('progress ["5"] 2 false');
    expect(c.progress).toHaveBeenCalledWith(["5"], 2, false);
    expect(result!.end.onApplied).toBe(c.onApplied);
  });

  it("keeps rows changed before the low watermark (the chunk's SELECT already saw them)", () => {
    const windows = new ResyncWindows();
    const c = chunk(usersPlan!, 1, [1, 2].map(userRow), { lo: null, hi: ["2"] });
    windows.register(c.registered);
    windows.track(usersPlan!, change(usersPlan!, "update", { new: ["1", "before@example.com"] }));
    windows.onLow(mark("public.users", 1, "low"));
    expect(keysOf(windows.onHigh(mark("public.users", 1, "high")))).toEqual(["1", "2"]);
  });

  it("tracks each open window apart, by table", () => {
    const windows = new ResyncWindows();
    const u = chunk(usersPlan!, 1, [1, 2].map(userRow), { lo: null, hi: ["2"] });
    const o = chunk(ordersPlan!, 1, [["1", "5.00"], ["2", "6.00"]], { lo: null, hi: ["2"] });
    windows.register(u.registered);
    windows.register(o.registered);
    windows.onLow(mark("public.users", 1, "low"));
    windows.onLow(mark("public.orders", 1, "low"));
    windows.track(ordersPlan!, change(ordersPlan!, "update", { new: ["2", "7.00"] }));
    expect(keysOf(windows.onHigh(mark("public.orders", 1, "high")))).toEqual(["1"]);
    expect(windows.active).toBe(true);
    windows.track(usersPlan!, change(usersPlan!, "insert", { new: userRow(1) }));
    expect(keysOf(windows.onHigh(mark("public.users", 1, "high")))).toEqual(["2"]);
    expect(windows.active).toBe(false);
  });

  it("repairs a final chunk's range without an upper bound", () => {
    const windows = new ResyncWindows();
    const c = chunk(usersPlan!, 3, [userRow(7)], { lo: ["5"], hi: ["7"], final: true });
    windows.register(c.registered);
    windows.onLow(mark("public.users", 3, "low"));
    const result = windows.onHigh(mark("public.users", 3, "high"));
    const [repair] = result!.end.statements;
    expect(repair!.text).toContain(">");
    expect(repair!.text).not.toContain("<=");
    expect(repair!.values[0]).toBe("5");
    expect(c.progress).toHaveBeenCalledWith(["7"], 1, true);
  });

  it("knows no watermark it was not given, nor one whose chunk was unregistered", () => {
    const windows = new ResyncWindows();
    expect(windows.onHigh(mark("public.users", 1, "high"))).toBeNull();
    const c = chunk(usersPlan!, 1, [userRow(1)], { lo: null, hi: ["1"] });
    windows.register(c.registered);
    windows.onLow(mark("public.users", 1, "low"));
    windows.unregister(c.registered.mark);
    expect(windows.active).toBe(false);
    expect(windows.onHigh(mark("public.users", 1, "high"))).toBeNull();
    // A replayed watermark of another attempt does not match.
    windows.register(c.registered);
    windows.onLow({ ...mark("public.users", 1, "low"), attempt: "old" });
    expect(windows.onHigh({ ...mark("public.users", 1, "high"), attempt: "old" })).toBeNull();
  });
});
