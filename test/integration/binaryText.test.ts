/**
 * source/binaryText.ts against the server: for every type it prints, awkward values sent in the type's
 * binary format (its send function, as pgoutput's `binary 'true'` sends them) must print exactly as
 * the type's output function prints the value (what a text stream sends; `format('%s')` calls it, where
 * a cast to text would print a boolean as `true` and trim a character(n)) in pgferry's sessions
 * (DateStyle ISO, TimeZone UTC).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { binaryToText } from "../../src/source/binaryText.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";

let db: TestDatabases;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabases("binarytext");
  client = new pg.Client({ connectionString: db.sourceUrl, options: "-c DateStyle=ISO -c IntervalStyle=postgres -c TimeZone=UTC" });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await db?.drop();
});

/** Per type: its send function and values as SQL literals. */
const CASES: Record<string, { send: string; values: string[] }> = {
  boolean: { send: "boolsend", values: ["true", "false"] },
  smallint: { send: "int2send", values: ["0", "-32768", "32767", "-1"] },
  integer: { send: "int4send", values: ["0", "-2147483648", "2147483647", "42"] },
  bigint: { send: "int8send", values: ["0", "-9223372036854775808", "9223372036854775807", "9007199254740993"] },
  oid: { send: "oidsend", values: ["0", "4294967295", "16384"] },
  text: { send: "textsend", values: ["''", "'héllo wörld ✓ 𝄞'", "E'tab\\there\\nnewline \\\\ back'", "repeat('x', 100000)"] },
  name: { send: "namesend", values: ["'pg_class'", "'Ünïcode'"] },
  "character varying(10)": { send: "varcharsend", values: ["'abc'", "''", "'ten chars!'"] },
  "character(5)": { send: "bpcharsend", values: ["'ab'", "''", "'abcde'"] },
  uuid: { send: "uuid_send", values: ["'00000000-0000-0000-0000-000000000000'", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "gen_random_uuid()"] },
  json: { send: "json_send", values: [`'{"b": 1,  "a" : [1, 2.50, "x"]}'`, "'null'", `'"\\u00e9"'`] },
  jsonb: { send: "jsonb_send", values: [`'{"b": 1,  "a" : [1, 2.50, "x"]}'`, "'null'", `'"\\u00e9"'`, `'{"deep": {"k": [true, false, null, 1e100]}}'`] },
  date: { send: "date_send", values: ["'infinity'", "'-infinity'", "'4714-11-24 BC'", "'5874897-12-31'", "'0044-03-15 BC'", "'0001-01-01'", "'0001-12-31 BC'", "'2000-02-29'", "'1970-01-01'", "'1999-12-31'", "'2100-03-01'"] },
  timestamp: {
    send: "timestamp_send",
    values: ["'infinity'", "'-infinity'", "'4714-11-24 00:00:00 BC'", "'294276-12-31 23:59:59.999999'", "'0001-12-31 23:59:59.999999 BC'", "'2000-02-29 12:34:56.789012'", "'1999-12-31 23:59:59.5'", "'1969-07-20 20:17:40.1'", "'2000-01-01 00:00:00.000001'", "'1999-12-31 23:59:59.999999'"],
  },
  "timestamp with time zone": {
    send: "timestamptz_send",
    values: ["'infinity'", "'-infinity'", "'4714-11-24 00:00:00+00 BC'", "'294276-12-31 23:59:59.999999+00'", "'1883-11-18 12:00:00-04:56:02'", "'2000-02-29 12:34:56.789012+05:30'", "'0001-01-01 00:00:00+00'", "'0001-12-31 23:59:59.99+00 BC'", "now()"],
  },
  numeric: {
    send: "numeric_send",
    values: ["'NaN'", "'Infinity'", "'-Infinity'", "0", "0.000", "-0.000000000000000000001", "12345678901234567890.123456789012345678901", "'1e-1000'", `'9${"8".repeat(999)}.5'`, "10000", "-10000.0001", "0.5", "100000000", "1.10", "(2::numeric / 3)", "round(123.456, -2)", "'0.00001000'"],
  },
  "double precision": {
    send: "float8send",
    values: [
      "'NaN'", "'Infinity'", "'-Infinity'", "0", "'-0'", "0.1", "1.0/3", "5e-324", "1.7976931348623157e308", "-2.2250738585072014e-308", "100", "1e14", "1e15",
      "123456789012345", "1234567890123456", "0.0001", "0.00001", "0.00012345", "-1.5e-5", "1e100", "123.456", "1e21", "1e22", "9007199254740993",
      ...Array.from({ length: 40 }, (_, i) => `(${(i * 0.6180339887) % 1} * 10 ^ ${(i % 41) - 20})`),
      // Random doubles across the whole range, and random bit patterns.
      ...Array.from({ length: 300 }, () => "(random() - 0.5) * 10 ^ (random() * 600 - 300)"),
      ...Array.from({ length: 300 }, () => "('x' || lpad(to_hex((random() * 4294967295)::bigint), 8, '0') || lpad(to_hex((random() * 2146435071)::bigint), 8, '0'))::bit(64)::bigint::text::float8"),
    ],
  },
  real: {
    send: "float4send",
    values: [
      "'NaN'", "'Infinity'", "'-Infinity'", "0", "'-0'", "0.1", "1.0/3", "1e-45", "3.4028235e38", "1.1754942e-38", "100000", "1e6", "123456", "1234567",
      "0.0001", "0.00001", "16777217", "-2.5e-5", "3.14159265",
      ...Array.from({ length: 40 }, (_, i) => `(${(i * 0.7548776662) % 1} * 10 ^ ${(i % 21) - 10})`),
      ...Array.from({ length: 300 }, () => "(random() - 0.5) * 10 ^ (random() * 76 - 38)"),
    ],
  },
  bytea: { send: "byteasend", values: ["''::bytea", "'\\x00ff1f1e'::bytea", "decode(repeat('ab', 5000), 'hex')", "convert_to('héllo', 'UTF8')"] },
  "bytea[]": { send: "array_send", values: ["ARRAY['\\x'::bytea, '\\x00ff'::bytea, NULL]"] },
  "double precision[]": { send: "array_send", values: ["'{NaN,-Infinity,-0,5e-324,0.1,1e15,NULL}'"] },
  "real[]": { send: "array_send", values: ["'{0.1,1e-45,-1e6,NULL}'"] },
  "text[]": {
    send: "array_send",
    values: ["'{}'", `'{a,"",NULL,"null","NULL ",x y,"q\\"uote","back\\\\slash","{brace}","com,ma",é, "\u00a0nbsp"}'`, "'{{a,b},{c,NULL}}'", "'[0:1]={x,y}'", "'[-2:-1][3:4]={{a,b},{c,d}}'", "ARRAY[E'tab\\there', E'new\\nline', '']"],
  },
  "integer[]": { send: "array_send", values: ["'{1,-2,NULL}'", "'{{1,2,3},{4,5,6}}'", "'[5:5]={7}'", "'{}'"] },
  "bigint[]": { send: "array_send", values: ["'{9223372036854775807,-9223372036854775808}'"] },
  "boolean[]": { send: "array_send", values: ["'{t,f,NULL}'"] },
  "numeric[]": { send: "array_send", values: ["'{NaN,Infinity,-Infinity,1.50,0.0001}'"] },
  "uuid[]": { send: "array_send", values: ["ARRAY[gen_random_uuid(), NULL]"] },
  "jsonb[]": { send: "array_send", values: [`ARRAY['{"a": [1, "x y"]}'::jsonb, 'null', '"quo\\"te, {b}"'::jsonb]`] },
  "timestamp with time zone[]": { send: "array_send", values: ["ARRAY['infinity'::timestamptz, '2000-01-01 00:00:00.5+00', '0044-03-15 12:00+00 BC']"] },
  "date[]": { send: "array_send", values: ["ARRAY['2000-02-29'::date, '4714-11-24 BC']"] },
  "character(3)[]": { send: "array_send", values: [`'{"a","",NULL,abc}'`] },
  "character varying[]": { send: "array_send", values: [`'{"",x,"y z"}'`] },
};

describe("binaryToText prints what the server prints", () => {
  for (const [type, { send, values }] of Object.entries(CASES)) {
    it(type, async () => {
      const { rows } = await client.query<{ oid: number; text: string; sent: Buffer }>(
        `SELECT format('%s', v) AS text, ${send}(v) AS sent, pg_typeof(v)::oid::int AS oid FROM (VALUES ${values.map((v) => `((${v})::${type})`).join(", ")}) AS t(v)`,
      );
      expect(rows).toHaveLength(values.length);
      for (const row of rows) {
        const print = binaryToText(row.oid);
        expect(print, `a printer for ${type}`).toBeDefined();
        expect(print!(row.sent)).toBe(row.text);
      }
    });
  }

  it("has no printer for a type it does not know (the stream then stays text)", async () => {
    const { rows } = await client.query<{ oid: number }>("SELECT oid::int FROM pg_type WHERE typname IN ('interval', 'vector', 'money', 'inet', '_interval', '_inet')");
    expect(rows.length).toBeGreaterThanOrEqual(5);
    for (const row of rows) expect(binaryToText(row.oid)).toBeUndefined();
  });
});
