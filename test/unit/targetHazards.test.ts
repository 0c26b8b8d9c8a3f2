/**
 * Which type modifier changes round a value without an error (preflight refuses them): type
 * modifiers as PostgreSQL stores them in pg_attribute.atttypmod.
 */
import { describe, expect, it } from "vitest";
import { roundingModifier, shorterLength } from "../../src/pipeline/targetHazards.js";

const numeric = (precision: number, scale: number) => ((precision << 16) | (scale & 0x7ff)) + 4;
const interval = (precision: number) => ((0x7fff << 16) | precision) >>> 0; // interval(p), every field

describe("roundingModifier", () => {
  it("numeric: a smaller scale rounds, a smaller precision fails instead", () => {
    expect(numeric(12, 2)).toBe(786438); // numeric(12,2) as PostgreSQL 15 stores it
    expect(roundingModifier("numeric", numeric(12, 2), numeric(12, 0))).toBe("rounded from 2 to 0 decimal(s)");
    expect(roundingModifier("numeric", -1, numeric(20, 4))).toBe("rounded to 4 decimal(s)");
    expect(roundingModifier("numeric", numeric(12, 2), numeric(5, 2))).toBeNull(); // overflow: an error, not silence
    expect(roundingModifier("numeric", numeric(10, 2), numeric(14, 4))).toBeNull();
    expect(roundingModifier("numeric", numeric(12, 2), -1)).toBeNull();
    expect(roundingModifier("numeric", numeric(5, -2), numeric(7, -3))).toBe("rounded from -2 to -3 decimal(s)");
  });

  it("timestamps, times and intervals: fewer fractional-second digits round", () => {
    expect(roundingModifier("timestamptz", -1, 3)).toBe("rounded from 6 to 3 fractional-second digit(s)");
    expect(roundingModifier("timestamp", 3, 6)).toBeNull();
    expect(roundingModifier("time", 2, -1)).toBeNull();
    expect(interval(0)).toBe(2147418112);
    expect(roundingModifier("interval", -1, interval(0))).toBe("rounded from 6 to 0 fractional-second digit(s)");
    expect(roundingModifier("interval", interval(2), interval(4))).toBeNull();
    expect(roundingModifier("interval", -1, 201392127)).toBe("cut to the target's interval fields"); // interval hour to minute
  });

  it("types whose modifier fails instead of rounding are not reported", () => {
    expect(roundingModifier("varchar", 14, 9)).toBeNull();
    expect(roundingModifier("bpchar", 9, 7)).toBeNull();
    expect(roundingModifier("vector", 1536, 3)).toBeNull();
  });
});

describe("shorterLength (a domain's base type)", () => {
  it("reports a shorter varchar, char or varbit limit and any other bit(n) length", () => {
    expect(shorterLength("varchar", 14, 9)).toBe("cut to 5 character(s)"); // varchar(10) → varchar(5)
    expect(shorterLength("varchar", -1, 9)).toBe("cut to 5 character(s)");
    expect(shorterLength("varchar", 9, 14)).toBeNull();
    expect(shorterLength("bpchar", 9, -1)).toBeNull();
    expect(shorterLength("varbit", 16, 8)).toBe("cut to 8 bit(s)");
    expect(shorterLength("bit", 8, 16)).toBe("padded or cut to 16 bit(s)");
    expect(shorterLength("bit", 8, 8)).toBeNull();
    expect(shorterLength("numeric", 786438, 786436)).toBeNull();
  });
});
