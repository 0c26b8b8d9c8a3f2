/**
 * Which columns a binary stream passes through (plan.ts opaqueInputs) and whether a stream can be
 * binary at all (pipeline/streamFormat.ts), on plans compiled by the real mapping compiler.
 */
import { describe, expect, it } from "vitest";
import { opaqueInputs } from "../../src/plan/plan.js";
import { binaryStream, describeStreamFormat, textOnlyColumns } from "../../src/pipeline/streamFormat.js";
import { column, compilePlans, entry, table } from "../fixtures/plans.js";

const OID = { int8: 20, text: 25, jsonb: 3802, interval: 1186, vector: 16_500, textArray: 1009 };

const sourceColumns = [
  column("id", "bigint", { typeOid: OID.int8 }),
  column("body", "text", { typeOid: OID.text }),
  column("doc", "jsonb", { typeOid: OID.jsonb }),
  column("score", "interval", { typeOid: OID.interval }),
  column("v", "vector(3)", { typeOid: OID.vector, castType: "vector" }),
  column("tags", "text[]", { typeOid: OID.textArray }),
];
const source = table("public.items", sourceColumns, ["id"]);
const target = (id: string, columns = sourceColumns) => table(id, columns, ["id"]);

describe("opaqueInputs", () => {
  it("passes through copied non-key, non-array columns of identical types; the key, arrays and what SQL reads are read", () => {
    const [plan] = compilePlans([entry("public.items", "app.items", { where: "doc ? 'k'", columns: { body: { sql: "upper(body)" } } })], [source], [target("app.items")]);
    const opaque = Object.fromEntries(plan!.sourceColumns.map((name, i) => [name, opaqueInputs(plan!)[i]]));
    expect(opaque).toEqual({ id: false, body: false, doc: false, score: true, v: true, tags: false });
    // score and v pass through; id, body, doc and tags are printed, and all four have printers.
    expect(binaryStream("auto", [plan!])).toEqual({ binary: true });
  });

  it("reads every column of a table with a hook; a keyless table's old values only find its row", () => {
    const [hooked] = compilePlans([entry("public.items", "app.items", { hook: "/x/hook.js" })], [source], [target("app.items")]);
    expect(opaqueInputs(hooked!).every((o) => !o)).toBe(true);
    expect(textOnlyColumns([hooked!])).toEqual(["public.items.score (interval)", "public.items.v (vector(3))"]);
    const keyless = table("public.loose", sourceColumns, null);
    const [plan] = compilePlans([entry("public.loose", "app.loose")], [keyless], [table("app.loose", sourceColumns, null)]);
    expect(opaqueInputs(plan!)).toEqual([true, true, true, true, true, false]);
    expect(textOnlyColumns([plan!])).toEqual([]);
  });

  it("a converted column (json into jsonb) is read and printed, not passed through: the target parses its text", () => {
    const json = sourceColumns.map((c) => (c.name === "doc" ? column("doc", "json", { typeOid: 114 }) : c));
    const [plan] = compilePlans([entry("public.items", "app.items")], [table("public.items", json, ["id"])], [target("app.items")]);
    expect(opaqueInputs(plan!)[plan!.sourceColumns.indexOf("doc")]).toBe(false);
    expect(opaqueInputs(plan!)[plan!.sourceColumns.indexOf("v")]).toBe(true);
    expect(textOnlyColumns([plan!])).toEqual([]);
  });
});

describe("binaryStream and describeStreamFormat", () => {
  const [plan] = compilePlans([entry("public.items", "app.items", { where: "score > '0'" })], [source], [target("app.items")]);
  const plans = [plan!];

  it("auto falls back to text, binary refuses, text is text", () => {
    expect(binaryStream("auto", plans)).toEqual({ binary: false });
    expect(binaryStream("text", plans)).toEqual({ binary: false });
    expect(binaryStream("binary", plans).problem).toBe(
      "apply.format is binary, but pgferry reads these columns (keys, filters, SQL inputs, hooks, arrays) and cannot print their type from binary: " +
        "public.items.score (interval); use apply.format: auto (a text stream here) or text",
    );
  });

  it("says how the stream carries values, and why", () => {
    expect(describeStreamFormat("auto", plans)).toBe(
      "stream: text values (apply.format: auto; pgferry reads public.items.score (interval), and cannot print their type from binary)",
    );
    expect(describeStreamFormat("text", plans)).toBe("stream: text values (apply.format: text)");
    const [clean] = compilePlans([entry("public.items", "app.items")], [source], [target("app.items")]);
    expect(describeStreamFormat("auto", [clean!])).toBe("stream: binary values from pgoutput, copied columns passed through (apply.format: auto)");
  });
});
