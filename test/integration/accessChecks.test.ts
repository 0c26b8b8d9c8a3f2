/**
 * Preflight's access checks (src/pipeline/accessChecks.ts) against real catalogs, one rule at a time,
 * as a role that lacks exactly what each rule looks for: the message names the side, the object and
 * the fix, and a role that has the right gets no message.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  checkPinnedSettings,
  checkPublicationRights,
  checkRowSecurity,
  checkSequencePrivileges,
  checkStateSchemaRights,
} from "../../src/pipeline/accessChecks.js";
import { openPool } from "../../src/sql/session.js";
import type { TablePlan } from "../../src/plan/plan.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";

let db: TestDatabases;
const role = `pgferry_acl_${randomBytes(3).toString("hex")}`;
let asRole: { source: pg.Pool; target: pg.Pool };

function urlAs(url: string): string {
  const u = new URL(url);
  u.username = role;
  return u.toString();
}

async function problemsOf(check: (problems: string[]) => Promise<void>): Promise<string[]> {
  const problems: string[] = [];
  await check(problems);
  return problems;
}

/** The one plan shape checkSequencePrivileges reads: which target columns an edge writes. */
function writes(table: string, columns: string[]): TablePlan {
  const [schema, name] = table.split(".") as [string, string];
  return { edges: [{ table: { id: table, schema, name, columns: columns.map((c) => ({ name: c, type: "text" })), keyIndexes: [0] } }] } as unknown as TablePlan;
}

beforeAll(async () => {
  db = await createTestDatabases("acl");
  for (const pool of [db.source, db.target]) {
    await pool.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF; END $$`);
  }
  await db.source.query(`
    CREATE TABLE public.notes (id int PRIMARY KEY, body text);
    CREATE TABLE public.events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE public.events_2027 PARTITION OF public.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
    CREATE TABLE public.owned (id int PRIMARY KEY);
    ALTER TABLE public.owned OWNER TO ${role};
    ALTER TABLE public.owned ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
    ALTER TABLE public.events_2027 ENABLE ROW LEVEL SECURITY;
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role};
    REVOKE CREATE ON DATABASE ${db.name} FROM PUBLIC;`);
  await db.target.query(`
    CREATE SCHEMA app;
    CREATE TABLE app.notes (id int PRIMARY KEY, body text, n bigserial, seq_id int GENERATED ALWAYS AS IDENTITY, created date DEFAULT now());
    GRANT USAGE ON SCHEMA app TO ${role};
    GRANT SELECT, INSERT, UPDATE, DELETE ON app.notes TO ${role};
    REVOKE CREATE ON DATABASE ${db.name} FROM PUBLIC;`);
  asRole = {
    source: openPool(urlAs(db.sourceUrl), { applicationName: "acl-test", max: 1 }),
    target: openPool(urlAs(db.targetUrl), { applicationName: "acl-test", max: 1 }),
  };
});

afterAll(async () => {
  await Promise.all([asRole?.source.end(), asRole?.target.end()]);
  await db?.drop();
  // Roles are per cluster: the test's own goes with it.
  const servers = inject("pgServers");
  for (const url of [servers.sourceUrl, servers.targetUrl]) {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.end());
  }
});

describe("preflight access checks", () => {
  it("names RLS on a leaf partition the snapshot reads, and FORCE RLS on a table the role owns; none for a table without RLS", async () => {
    expect(await problemsOf((p) => checkRowSecurity(asRole.source, ["public.notes", "public.events", "public.owned"], "source", p))).toEqual([
      `source: row-level security is on for public.events_2027 (a partition of public.events): its policies apply to role ${role}, which does not own it, ` +
        `and the snapshot would copy only the rows they show; give the role BYPASSRLS (as a superuser: ALTER ROLE ${role} BYPASSRLS, or docs/privileges.sql with -v bypassrls=on)`,
      `source: row-level security is on for public.owned: FORCE ROW LEVEL SECURITY applies its policies to its owner too, ` +
        `and the snapshot would copy only the rows they show; give the role BYPASSRLS (as a superuser: ALTER ROLE ${role} BYPASSRLS, or docs/privileges.sql with -v bypassrls=on)`,
    ]);
    // The target writes through the root, so its partitions' own policies do not apply there.
    expect(await problemsOf((p) => checkRowSecurity(asRole.source, ["public.events"], "target", p))).toEqual([]);
    // A superuser bypasses all of it.
    expect(await problemsOf((p) => checkRowSecurity(db.source, ["public.events", "public.owned"], "source", p))).toEqual([]);
  });

  it("asks for USAGE on the sequence of a serial default the mapping leaves unwritten, not on identity sequences or written columns", async () => {
    const unwritten = await problemsOf((p) => checkSequencePrivileges(asRole.target, [writes("app.notes", ["id", "body"])], p));
    expect(unwritten).toEqual([
      `target: the role lacks USAGE on sequence app.notes_n_seq, the default of app.notes.n, which the mapping does not write (GRANT USAGE ON SEQUENCE app.notes_n_seq TO ${role}; see docs/privileges.sql)`,
    ]);
    expect(await problemsOf((p) => checkSequencePrivileges(asRole.target, [writes("app.notes", ["id", "body", "n"])], p))).toEqual([]);
    // A merge: a column one edge writes and another does not still takes its default.
    expect(await problemsOf((p) => checkSequencePrivileges(asRole.target, [writes("app.notes", ["id", "n"]), writes("app.notes", ["id", "body"])], p))).toEqual(unwritten);
    await db.target.query(`GRANT USAGE ON SEQUENCE app.notes_n_seq TO ${role}`);
    expect(await problemsOf((p) => checkSequencePrivileges(asRole.target, [writes("app.notes", ["id", "body"])], p))).toEqual([]);
  });

  it("refuses a publication the role can neither find nor create, and accepts one its owner made with exactly the mapped tables", async () => {
    const tables = ["public.notes", "public.events"];
    expect(await problemsOf((p) => checkPublicationRights(asRole.source, "acl_pub", tables, p))).toEqual([
      "source: publication acl_pub does not exist, and the role cannot create it (it lacks CREATE on the database and ownership of public.events, public.notes); " +
        "let the tables' owner create it: docs/privileges.sql -v side=source",
    ]);
    await db.source.query("CREATE PUBLICATION acl_pub FOR TABLE public.notes WITH (publish_via_partition_root = true)");
    expect((await problemsOf((p) => checkPublicationRights(asRole.source, "acl_pub", tables, p)))[0]).toMatch(
      /^source: publication acl_pub does not hold exactly the mapped tables with publish_via_partition_root, and the role cannot alter it/,
    );
    await db.source.query("ALTER PUBLICATION acl_pub ADD TABLE public.events");
    expect(await problemsOf((p) => checkPublicationRights(asRole.source, "acl_pub", tables, p))).toEqual([]);
  });

  it("needs CREATE on the database for a missing state schema, and USAGE and CREATE on an existing one", async () => {
    expect(await problemsOf((p) => checkStateSchemaRights(asRole.target, "_acl_state", p))).toEqual([
      "target: state schema _acl_state does not exist and the role may not create it (CREATE SCHEMA _acl_state AUTHORIZATION <role>; see docs/privileges.sql)",
    ]);
    await db.target.query("CREATE SCHEMA _acl_state");
    expect(await problemsOf((p) => checkStateSchemaRights(asRole.target, "_acl_state", p))).toEqual([
      "target: the role lacks USAGE or CREATE on its state schema _acl_state (ALTER SCHEMA _acl_state OWNER TO <role>; see docs/privileges.sql)",
    ]);
    await db.target.query(`ALTER SCHEMA _acl_state OWNER TO ${role}`);
    expect(await problemsOf((p) => checkStateSchemaRights(asRole.target, "_acl_state", p))).toEqual([]);
  });

  it("finds the pinned settings in effect on pgferry's sessions, over database and role settings, and reports a session without them", async () => {
    await db.source.query(`ALTER DATABASE ${db.name} SET DateStyle = 'SQL, DMY'`);
    await db.source.query(`ALTER ROLE ${role} IN DATABASE ${db.name} SET IntervalStyle = 'iso_8601'`);
    const fresh = openPool(urlAs(db.sourceUrl), { applicationName: "acl-test", max: 1 });
    try {
      expect(await problemsOf((p) => checkPinnedSettings(fresh, "source", p))).toEqual([]);
    } finally {
      await fresh.end();
    }
    // A plain session (as through a pooler that drops startup options) has the database's and role's settings.
    const plain = new pg.Pool({ connectionString: urlAs(db.sourceUrl), max: 1 });
    try {
      const problems = await problemsOf((p) => checkPinnedSettings(plain, "source", p));
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^source: the session settings pgferry pins at connect did not take effect \(DateStyle=SQL, DMY, IntervalStyle=iso_8601, extra_float_digits=1, .*row_security=on\): /);
    } finally {
      await plain.end();
      await db.source.query(`ALTER ROLE ${role} IN DATABASE ${db.name} RESET IntervalStyle`);
    }
  });
});
