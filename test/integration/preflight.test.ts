/**
 * Preflight reports every problem at once, before anything is created on either side: missing
 * tables and columns, incompatible types, a table without replica identity, a target without the key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PreflightError } from "../../src/pipeline/preflight.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { startPipeline, testConfig } from "../harness/pipelineRunner.js";

let db: TestDatabases;

beforeAll(async () => {
  db = await createTestDatabases("preflight");
  await db.source.query(`
    CREATE TABLE nokey (a int, b text);
    CREATE TABLE typed (id int PRIMARY KEY, n integer, extra text);
    CREATE TABLE keyed (id int PRIMARY KEY, v text);`);
  await db.target.query(`
    CREATE SCHEMA app;
    CREATE TABLE app.nokey (a int, b text);
    CREATE TABLE app.typed (id int PRIMARY KEY, n uuid, required text NOT NULL);
    CREATE TABLE app.keyed (id int, v text);`);
});
afterAll(async () => db?.drop());

describe("preflight", () => {
  it("lists every problem and creates nothing", async () => {
    const config = testConfig({
      sourceUrl: db.sourceUrl,
      targetUrl: db.targetUrl,
      tables: [
        { from: "public.nokey", to: "app.nokey" },
        { from: "public.missing", to: "app.nokey" },
        { from: "public.typed", to: "app.typed" },
        { from: "public.keyed", to: "app.keyed" },
        { from: "public.keyed", to: "app.gone" },
      ],
    });
    const running = startPipeline(config);
    const error = await running.done.then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(PreflightError);
    const problems = (error as PreflightError).problems;
    expect(problems).toEqual([
      "tables[0].from: public.nokey has no replica identity, so the source refuses its UPDATEs and DELETEs once published; add a primary key or run ALTER TABLE public.nokey REPLICA IDENTITY FULL",
      "tables[1].from: source table public.missing does not exist (or is not a table)",
      "tables[2]: column n is integer in public.typed but uuid in app.typed",
      "tables[2]: target table app.typed has no column extra (source public.typed.extra); map it in columns or list it in exclude",
      "tables[2]: target column app.typed.required is NOT NULL without a default and nothing maps to it",
      "tables[3]: app.keyed needs a primary key or unique index on (id), the key of public.keyed, so that changes can find their rows",
      "tables[4].to: target table app.gone does not exist; create it first (pgferry plan --ddl prints a definition)",
    ]);
    expect(running.phases).toContain("failed");
    const created = await db.source.query("SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())::int AS slots, (SELECT count(*) FROM pg_publication)::int AS pubs");
    expect(created.rows[0]).toEqual({ slots: 0, pubs: 0 });
    const state = await db.target.query("SELECT to_regnamespace('_pgferry') IS NULL AS absent");
    expect(state.rows[0]).toEqual({ absent: true });
  });
});
