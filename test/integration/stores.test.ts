/**
 * The PostgreSQL stores pass the store contract (the same one the memory stores pass in
 * test/unit/checkpointStore.test.ts), each test on a fresh state schema; the memory stores answer as
 * they do on one sequence of calls; and the state schema's migrations still end at the same version.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postgresStores } from "../../src/state/postgresStores.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { memoryHarness, storeContract, storeTrace, type StoreHarness } from "../harness/storeContract.js";

let db: TestDatabases;
let schemas = 0;

beforeAll(async () => {
  db = await createTestDatabases("stores");
});
afterAll(async () => db?.drop());

/** The PostgreSQL stores on a state schema of their own; each transaction on its own connection. */
function postgresHarness(): StoreHarness {
  schemas += 1;
  const schema = `state_${schemas}`;
  return {
    stores: (pipeline) => postgresStores({ pool: db.target, schema, pipeline }),
    async transaction(outcome, work) {
      // Not a pooled client: the stores' prepared statements are named, and their text differs per schema.
      const client = new pg.Client({ connectionString: db.targetUrl });
      await client.connect();
      try {
        await client.query("BEGIN");
        try {
          await work(client);
        } catch (error) {
          await client.query("ROLLBACK");
          throw error;
        }
        await client.query(outcome === "commit" ? "COMMIT" : "ROLLBACK");
      } finally {
        await client.end();
      }
    },
    async execute(tx, statement) {
      await (tx as pg.ClientBase).query({ name: statement.name, text: statement.text, values: statement.values });
    },
  };
}

storeContract("PostgreSQL", () => Promise.resolve(postgresHarness()));

describe("PostgreSQL and memory stores", () => {
  it("answer alike, step by step, on the same sequence of calls", async () => {
    const postgres = await storeTrace(postgresHarness());
    const memory = await storeTrace(memoryHarness());
    expect(memory).toEqual(postgres);
  });

  it("migrate the state schema to its latest version, and upgrade one left at version 2 (before resyncs)", async () => {
    const harness = postgresHarness();
    const { checkpoints } = harness.stores("p1");
    await checkpoints.migrate();
    const schema = `state_${schemas}`;
    const version = async () => (await db.target.query<{ version: number }>(`SELECT version FROM "${schema}".schema_version`)).rows.map((r) => r.version);
    const tables = async () =>
      (await db.target.query<{ relname: string }>("SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace($1) AND relkind = 'r' ORDER BY relname", [schema])).rows.map((r) => r.relname);
    expect(await version()).toEqual([8]);
    expect(await tables()).toEqual(["conflicts", "cutover_steps", "deferred_indexes", "pipelines", "progress", "resyncs", "schema_version", "tables", "verifications"]);
    await db.target.query(`DROP TABLE "${schema}".resyncs; UPDATE "${schema}".schema_version SET version = 2`);
    await checkpoints.migrate();
    expect(await version()).toEqual([8]);
    expect(await tables()).toEqual(["conflicts", "cutover_steps", "deferred_indexes", "pipelines", "progress", "resyncs", "schema_version", "tables", "verifications"]);
  });
});
