/**
 * Loop prevention against real PostgreSQL: an apply session tagged with a replication origin writes
 * rows, other sessions write untagged or under someone else's origin, and a stream reader that
 * ignores the first origin delivers exactly the others (each change makes one trip: the filtered ones
 * are counted, their transactions still committed). A role that may not tag its writes fails an apply
 * session that requires the origin with the GRANT that fixes it, and the access check names it too.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Applier } from "../../src/apply/applier.js";
import type { Statement } from "../../src/apply/types.js";
import { PgferryError } from "../../src/errors.js";
import { checkOriginPrivileges } from "../../src/pipeline/accessChecks.js";
import type { SourceChange, SourceCommit, SourceTruncate } from "../../src/plan/changes.js";
import type { TablePlan } from "../../src/plan/plan.js";
import { ReplicationConnection } from "../../src/source/replicationConnection.js";
import { StreamReader, type ChangeSink } from "../../src/source/streamReader.js";
import { endpoint } from "../../src/sql/endpoint.js";
import { openPool } from "../../src/sql/session.js";
import { table } from "../fixtures/plans.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { waitFor } from "../harness/waitFor.js";

// Roles and replication origins are per cluster: names of this file's own.
const suffix = randomBytes(3).toString("hex");
const role = `pgferry_origin_${suffix}`;
const OURS = `pgferry_it_${suffix}`;
const FOREIGN = `other_${suffix}`;
const ITEMS: TablePlan = { id: "public.items", source: table("public.items", [], ["id"]), sourceColumns: ["id", "v"], keyInputs: [0], edges: [] };

let db: TestDatabases;

function urlAs(url: string): string {
  const u = new URL(url);
  u.username = role;
  return u.toString();
}

/** An apply session on the source database itself (that is where the reader looks), tagged with `origin`. */
function applier(url: string, origin: string, requireOrigin: boolean): Promise<Applier> {
  return Applier.connect({ target: endpoint("source", url), applicationName: "origins-test", origin, requireOrigin, writeCheckpoint: () => Promise.resolve() });
}

async function applyTransaction(session: Applier, statements: { op: Statement["op"]; text: string; values: unknown[] }[]): Promise<void> {
  await session.execute(statements.map((s) => ({ ...s, rows: 1, table: "public.items" })));
  await session.commit({ commitLsn: 0n, endLsn: 0n, commitTime: null });
}

beforeAll(async () => {
  db = await createTestDatabases("origins");
  await db.source.query(`
    CREATE TABLE public.items (id int PRIMARY KEY, v text);
    CREATE PUBLICATION origins_pub FOR TABLE public.items;
    DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF; END $$;
    GRANT SET ON PARAMETER session_replication_role TO ${role};
    GRANT SELECT, INSERT ON public.items TO ${role};`);
});

afterAll(async () => {
  // An origin held by a session that is still exiting cannot be dropped yet.
  await waitFor(() => db.source.query("SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = ANY ($1)", [[OURS, FOREIGN]]), {
    description: "the test's replication origins dropped",
    timeoutMs: 10_000,
  }).catch(() => undefined);
  await db?.drop();
  const admin = new pg.Client({ connectionString: inject("pgServers").sourceUrl });
  await admin.connect();
  try {
    await admin.query(`REVOKE SET ON PARAMETER session_replication_role FROM ${role}`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
  } finally {
    await admin.end();
  }
});

describe("replication origins (loop prevention)", () => {
  it("a reader ignoring an origin delivers only the untagged and foreign transactions, and commits and counts the ignored ones", async () => {
    const replication = await ReplicationConnection.connect(endpoint("source", db.sourceUrl), "origins-test");
    const received: (SourceChange | SourceTruncate | SourceCommit)[] = [];
    const filtered: [string, number][] = [];
    const sink: ChangeSink = { change: (c) => received.push(c), truncate: (t) => received.push(t), commit: (c) => received.push(c) };
    const commits = () => received.filter((e): e is SourceCommit => e.type === "commit");
    let streaming: Promise<void> | undefined;
    try {
      const slot = await replication.createSlot(`origins_${suffix}`, { temporary: true, exportSnapshot: false });

      const ours = await applier(db.sourceUrl, OURS, true);
      const foreign = new pg.Client({ connectionString: db.sourceUrl });
      await foreign.connect();
      try {
        await applyTransaction(ours, [
          { op: "insert", text: "INSERT INTO public.items VALUES ($1, $2)", values: [1, "ours"] },
          { op: "insert", text: "INSERT INTO public.items VALUES ($1, $2)", values: [2, "ours"] },
        ]);
        await db.source.query("INSERT INTO public.items VALUES (10, 'plain')");
        await foreign.query("SELECT pg_replication_origin_create($1)", [FOREIGN]);
        await foreign.query("SELECT pg_replication_origin_session_setup($1)", [FOREIGN]);
        await foreign.query("INSERT INTO public.items VALUES (20, 'foreign')");
        await applyTransaction(ours, [
          { op: "update", text: "UPDATE public.items SET v = 'ours again' WHERE id = $1", values: [10] },
          { op: "delete", text: "DELETE FROM public.items WHERE id = $1", values: [20] },
          { op: "insert", text: "INSERT INTO public.items VALUES ($1, $2)", values: [3, "ours"] },
        ]);
        await db.source.query("UPDATE public.items SET v = 'plain again' WHERE id = 10");
      } finally {
        await ours.close();
        await foreign.end();
      }

      const reader = new StreamReader({
        plans: [ITEMS],
        syncLsns: new Map(),
        skipThrough: 0n,
        sink,
        log: pino({ level: "silent" }),
        onKeepalive: () => undefined,
        ignoreOrigins: new Set([OURS]),
        onOriginFiltered: (origin, changes) => filtered.push([origin, changes]),
      });
      // On 16+ the server drops the tagged transactions itself; on 15 (this server) the reader does.
      streaming = replication.stream({ slot: slot.slotName, startLsn: slot.consistentPoint, publication: "origins_pub", protoVersion: 1, messages: false, skipOriginated: true }, reader);
      const failed = { message: undefined as string | undefined };
      streaming.catch((error: unknown) => { failed.message = `the stream ended: ${String(error)}`; });
      const version = Number((await db.source.query<{ v: string }>("SHOW server_version_num")).rows[0]?.v);
      // Five transactions; a 16+ server does not send the two it drops.
      const expectedCommits = version >= 160000 ? 3 : 5;
      await waitFor(() => commits().length, { description: `${expectedCommits} source commits`, until: (n) => n >= expectedCommits, failIf: () => failed.message });
    } finally {
      await replication.close();
      await streaming?.catch(() => undefined);
    }

    const changes = received.filter((e): e is SourceChange => e.type === "change");
    expect(changes.map((c) => [c.op, c.new])).toEqual([
      ["insert", ["10", "plain"]],
      ["insert", ["20", "foreign"]],
      ["update", ["10", "plain again"]],
    ]);
    // Each delivered change carries its own transaction's commit time (from Begin).
    const commitOf = (change: SourceChange) => commits().find((c) => received.indexOf(c) > received.indexOf(change));
    for (const change of changes) expect(change.commitTime).toEqual(commitOf(change)?.commitTime);
    if (commits().length === 5) {
      // The ignored transactions were committed to the sink (the checkpoint moves past them), and every change they held counted once.
      expect(received.map((e) => e.type)).toEqual(["commit", "change", "commit", "change", "commit", "commit", "change", "commit"]);
      expect(filtered).toEqual([[OURS, 2], [OURS, 3]]);
    }
  });

  it("requireOrigin: a role that may not tag its writes fails the apply session with the GRANT; best effort connects untagged", async () => {
    const asRole = openPool(urlAs(db.sourceUrl), { applicationName: "origins-test", max: 1 });
    try {
      const grant = `GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_reset() TO ${role}`;
      const failure = await applier(urlAs(db.sourceUrl), OURS, true).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(PgferryError);
      expect(failure).toMatchObject({ kind: "privilege", message: expect.stringContaining("loop prevention needs it") as unknown, hint: expect.stringContaining(grant) as unknown });

      const untagged = await applier(urlAs(db.sourceUrl), OURS, false);
      await untagged.close();

      expect(await checkOriginPrivileges(asRole, "source")).toEqual([
        `source: the role lacks EXECUTE on pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_reset(), which the apply session needs to tag its writes ` +
          `with its replication origin so the pipeline running the other way does not replicate them back (as a superuser: ${grant}; see docs/privileges.sql)`,
      ]);
      // The other checks' style too: pushed onto the list it is given.
      const problems = ["earlier problem"];
      await checkOriginPrivileges(asRole, "target", problems);
      expect(problems).toHaveLength(2);
      expect(await checkOriginPrivileges(db.source, "source")).toEqual([]);

      await db.source.query(grant);
      expect(await checkOriginPrivileges(asRole, "source")).toEqual([]);
      const tagged = await applier(urlAs(db.sourceUrl), OURS, true);
      await tagged.close();
    } finally {
      await asRole.end();
    }
  });
});
