import { describe, expect, it } from "vitest";
import { PINNED_SETTINGS, sessionConfig, startupOptions } from "../../src/sql/session.js";

describe("pinned session settings", () => {
  it("pins every setting that makes text exact, and row_security off", () => {
    expect(startupOptions()).toBe(
      "-c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex -c TimeZone=UTC -c client_encoding=UTF8 -c row_security=off -c lc_monetary=C -c standard_conforming_strings=on",
    );
    expect(Object.keys(PINNED_SETTINGS)).toEqual(["DateStyle", "IntervalStyle", "extra_float_digits", "bytea_output", "TimeZone", "client_encoding", "row_security", "lc_monetary", "standard_conforming_strings"]);
  });

  it("keeps the URL's own options in front, so the pins win, and removes them from the URL (node-pg would let the URL win)", () => {
    const config = sessionConfig("postgres://u:p@db.example:5432/app?options=-c%20search_path%3Dapp%20-c%20DateStyle%3DSQL&sslmode=require", {
      applicationName: "pgferry-test",
    });
    expect(config.options).toBe(`-c search_path=app -c DateStyle=SQL ${startupOptions()}`);
    expect(config.connectionString).toBe("postgres://u:p@db.example:5432/app?sslmode=require");
    expect(config.application_name).toBe("pgferry-test");
  });

  it("asks for raw text values and a walsender only when told", () => {
    const plain = sessionConfig("postgres://db/app", { applicationName: "a" }) as Record<string, unknown>;
    expect(plain.types).toBeUndefined();
    expect(plain.replication).toBeUndefined();
    const walsender = sessionConfig("postgres://db/app", { applicationName: "a", rawText: true, replication: true }) as Record<string, unknown>;
    expect(walsender.replication).toBe("database");
    const types = walsender.types as { getTypeParser(oid: number, format?: string): (v: string) => unknown };
    expect(types.getTypeParser(1700)("12345678901234567890.000000000001")).toBe("12345678901234567890.000000000001");
    expect(types.getTypeParser(1114)("2027-05-18 00:00:00")).toBe("2027-05-18 00:00:00");
  });

  it("passes a libpq keyword string through untouched (its options cannot be merged)", () => {
    const config = sessionConfig("host=db dbname=app", { applicationName: "a" });
    expect(config.connectionString).toBe("host=db dbname=app");
    expect(config.options).toBe(startupOptions());
  });
});
