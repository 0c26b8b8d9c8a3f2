/**
 * pipeline/ — preflight (its checks live in accessChecks.ts, targetHazards.ts, poolerCheck.ts), the snapshot, the stream session, resync and the retry loop with its error policy.
 *
 * Preflight's access checks: every right the run will use, on both sides, and everything that
 * would make a session see or write other rows than the mapping says (row-level security, session
 * settings that did not take). Each problem names the side, the object and the fix; nothing here
 * creates anything.
 */
import type pg from "pg";
import { originGrants } from "../apply/applier.js";
import type { Config } from "../config/index.js";
import { unpinnedSettings } from "../sql/session.js";
import type { TablePlan } from "../plan/plan.js";

export type Side = "source" | "target";

/**
 * Row-level security that applies to pgferry's role (enabled and the role is not the owner, or
 * FORCE for the owner; neither superuser nor BYPASSRLS): the source would show the snapshot only the
 * rows its policies allow, and the target would check every write against them. Sessions run with
 * `row_security = off`, so such a table raises an error instead; preflight names them all first.
 * On the source the snapshot reads leaf partitions directly, so their own policies count too.
 */
export async function checkRowSecurity(db: pg.Pool, tables: readonly string[], side: Side, problems: string[]): Promise<void> {
  const { rows } = await db.query<{ root: string; rel: string; is_root: boolean; owner: boolean; role: string }>(
    `SELECT r.id AS root, format('%I.%I', n.nspname, c.relname) AS rel, c.oid = to_regclass(r.id) AS is_root,
            pg_has_role(c.relowner, 'USAGE') AS owner, current_user AS role
     FROM unnest($1::text[]) AS r(id)
     CROSS JOIN LATERAL (SELECT to_regclass(r.id)
                         UNION SELECT p.relid FROM pg_partition_tree(to_regclass(r.id)) AS p WHERE $2 AND p.isleaf) AS t(relid)
     JOIN pg_class c ON c.oid = t.relid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE row_security_active(c.oid)
     ORDER BY 1, 2`,
    [[...new Set(tables)], side === "source"],
  );
  for (const row of rows) {
    const where = row.is_root ? row.root : `${row.rel} (a partition of ${row.root})`;
    const why = row.owner ? "FORCE ROW LEVEL SECURITY applies its policies to its owner too" : `its policies apply to role ${row.role}, which does not own it`;
    const effect = side === "source" ? "the snapshot would copy only the rows they show" : "every write would be checked against them (COPY refuses, an UPDATE or DELETE can match no row)";
    problems.push(
      `${side}: row-level security is on for ${where}: ${why}, and ${effect}; ` +
        `give the role BYPASSRLS (as a superuser: ALTER ROLE ${row.role} BYPASSRLS, or docs/privileges.sql with -v bypassrls=on)`,
    );
  }
}

/** Table rights, each one named with the grant that gives it. */
export async function checkTablePrivileges(db: pg.Pool, tables: readonly string[], privileges: readonly string[], side: Side, problems: string[]): Promise<void> {
  const { rows } = await db.query<{ id: string; privilege: string; role: string }>(
    `SELECT id, privilege, current_user AS role FROM unnest($1::text[]) AS id CROSS JOIN unnest($2::text[]) AS privilege
     WHERE to_regclass(id) IS NOT NULL AND NOT has_table_privilege(to_regclass(id), privilege)
     ORDER BY 1, array_position($2::text[], privilege)`,
    [[...new Set(tables)], privileges],
  );
  for (const row of rows) problems.push(`${side}: the role lacks ${row.privilege} on ${row.id} (GRANT ${row.privilege} ON ${row.id} TO ${row.role}; see docs/privileges.sql)`);
}

/**
 * The snapshot reads a partitioned table one leaf partition at a time, and reading a partition
 * directly is checked against its own privileges, not its root's.
 */
export async function checkPartitionPrivileges(source: pg.Pool, tables: readonly string[], problems: string[]): Promise<void> {
  const { rows } = await source.query<{ root: string; partition: string }>(
    `SELECT r.id AS root, format('%I.%I', n.nspname, c.relname) AS partition
     FROM unnest($1::text[]) AS r(id)
     CROSS JOIN LATERAL pg_partition_tree(to_regclass(r.id)) AS p
     JOIN pg_class c ON c.oid = p.relid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE p.isleaf AND p.relid <> to_regclass(r.id) AND NOT has_table_privilege(p.relid, 'SELECT')
     ORDER BY 1, 2`,
    [[...new Set(tables)]],
  );
  for (const row of rows) problems.push(`source: the role lacks SELECT on ${row.partition}, a partition of ${row.root} (the snapshot reads partitions directly)`);
}

/**
 * A target column the mapping does not write takes its default on insert; a `nextval(...)` default
 * (serial, bigserial) needs USAGE on its sequence, which a COPY of the snapshot would otherwise
 * discover half-way. Identity columns need no right on their sequence.
 */
export async function checkSequencePrivileges(target: pg.Pool, plans: readonly TablePlan[], problems: string[]): Promise<void> {
  // Several edges into one table (a merge): a column that any of them leaves out takes its default.
  const written = new Map<string, string[]>();
  for (const edge of plans.flatMap((p) => p.edges)) {
    const names = edge.table.columns.map((c) => c.name);
    const before = written.get(edge.table.id);
    written.set(edge.table.id, before ? before.filter((n) => names.includes(n)) : names);
  }
  const { rows } = await target.query<{ tbl: string; col: string; seq: string; role: string }>(
    `SELECT e.tbl, a.attname AS col, s.oid::regclass::text AS seq, current_user AS role
     FROM jsonb_to_recordset($1::jsonb) AS e(tbl text, written text[])
     JOIN pg_attribute a ON a.attrelid = to_regclass(e.tbl) AND a.attnum > 0 AND NOT a.attisdropped AND NOT (a.attname = ANY (e.written))
     JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
     JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
     WHERE CASE WHEN s.relkind = 'S' THEN NOT has_sequence_privilege(s.oid, 'USAGE') ELSE false END
     ORDER BY 1, 2`,
    [JSON.stringify([...written].map(([tbl, names]) => ({ tbl, written: names })))],
  );
  for (const row of rows) {
    problems.push(`target: the role lacks USAGE on sequence ${row.seq}, the default of ${row.tbl}.${row.col}, which the mapping does not write (GRANT USAGE ON SEQUENCE ${row.seq} TO ${row.role}; see docs/privileges.sql)`);
  }
}

/**
 * The publication: pgferry creates or alters it only when it is missing or differs from the mapped
 * tables, which takes CREATE on the database and ownership of every table. A role without those
 * relies on the owner having created it (docs/privileges.sql).
 */
export async function checkPublicationRights(source: pg.Pool, name: string, tables: readonly string[], problems: string[]): Promise<void> {
  const { rows } = await source.query<{ exists: boolean; matches: boolean; can_create: boolean; not_owned: string[] }>(
    `WITH wanted AS (SELECT DISTINCT to_regclass(id) AS rel FROM unnest($2::text[]) AS id WHERE to_regclass(id) IS NOT NULL),
          have AS (SELECT (quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass AS rel FROM pg_publication_tables WHERE pubname = $1)
     SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1) AS exists,
            COALESCE((SELECT pubviaroot FROM pg_publication WHERE pubname = $1), false)
              AND NOT EXISTS (SELECT rel FROM wanted EXCEPT SELECT rel FROM have)
              AND NOT EXISTS (SELECT rel FROM have EXCEPT SELECT rel FROM wanted) AS matches,
            has_database_privilege(current_database(), 'CREATE') AS can_create,
            ARRAY(SELECT format('%I.%I', c.relnamespace::regnamespace::text, c.relname) FROM wanted w JOIN pg_class c ON c.oid = w.rel WHERE NOT pg_has_role(c.relowner, 'USAGE') ORDER BY 1) AS not_owned`,
    [name, [...tables]],
  );
  const r = rows[0]!;
  if (r.matches) return;
  const what = r.exists ? `publication ${name} does not hold exactly the mapped tables with publish_via_partition_root` : `publication ${name} does not exist`;
  const missing = [...(r.can_create ? [] : ["CREATE on the database"]), ...(r.not_owned.length > 0 ? [`ownership of ${r.not_owned.join(", ")}`] : [])];
  if (missing.length > 0) {
    problems.push(
      `source: ${what}, and the role cannot ${r.exists ? "alter" : "create"} it (it lacks ${missing.join(" and ")}); ` +
        "let the tables' owner create it: docs/privileges.sql -v side=source",
    );
  }
}

/** The target's state schema: created when missing (CREATE on the database), written to always. */
export async function checkStateSchemaRights(target: pg.Pool, schema: string, problems: string[]): Promise<void> {
  const { rows } = await target.query<{ exists: boolean; usable: boolean; can_create_schema: boolean }>(
    `SELECT n.oid IS NOT NULL AS exists,
            n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE') AND has_schema_privilege(n.oid, 'CREATE') AS usable,
            has_database_privilege(current_database(), 'CREATE') AS can_create_schema
     FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1`,
    [schema],
  );
  const r = rows[0]!;
  if (r.exists ? !r.usable : !r.can_create_schema) {
    problems.push(
      r.exists
        ? `target: the role lacks USAGE or CREATE on its state schema ${schema} (ALTER SCHEMA ${schema} OWNER TO <role>; see docs/privileges.sql)`
        : `target: state schema ${schema} does not exist and the role may not create it (CREATE SCHEMA ${schema} AUTHORIZATION <role>; see docs/privileges.sql)`,
    );
  }
}

/** The pinned session settings (sql/session.ts) hold on this side, or text values could be read differently. */
export async function checkPinnedSettings(db: pg.Pool, side: Side, problems: string[]): Promise<void> {
  const unpinned = await unpinnedSettings(db);
  if (unpinned.length > 0) {
    problems.push(
      `${side}: the session settings pgferry pins at connect did not take effect (${unpinned.join(", ")}): ` +
        "the connection goes through a pooler that drops startup options, or the URL's own options override them; use a direct connection without options=",
    );
  }
}

/**
 * With a reverse pipeline, the apply session on `side` must tag its writes with its replication
 * origin, or the pipeline running the other way would carry them back (loop prevention). Both
 * functions need superuser or EXECUTE granted; the create is checked even when the origin exists.
 * Pushes onto `problems` like the other checks, and returns it too (a fresh list when none is given).
 */
export async function checkOriginPrivileges(db: pg.Pool, side: Side, problems: string[] = []): Promise<string[]> {
  const { rows } = await db.query<{ missing: string[]; role: string }>(
    `SELECT ARRAY(SELECT f FROM unnest($1::text[]) AS f WHERE NOT has_function_privilege(f, 'EXECUTE')) AS missing, quote_ident(current_user) AS role`,
    [["pg_replication_origin_create(text)", "pg_replication_origin_session_setup(text)", "pg_replication_origin_xact_reset()"]],
  );
  const r = rows[0]!;
  if (r.missing.length === 0) return problems;
  problems.push(
    `${side}: the role lacks EXECUTE on ${r.missing.join(", ")}, which the apply session needs to tag its writes with its replication origin ` +
      `so the pipeline running the other way does not replicate them back (as a superuser: ${originGrants(r.role)}; see docs/privileges.sql)`,
  );
  return problems;
}

/** Every access check preflight runs, in one place (the problems come out in this order). */
export async function checkAccess(config: Config, source: pg.Pool, target: pg.Pool, plans: readonly TablePlan[] | null, problems: string[]): Promise<void> {
  const sourceIds = config.tables.map((t) => t.from);
  const targetIds = config.tables.map((t) => t.to);
  await checkPinnedSettings(source, "source", problems);
  await checkPinnedSettings(target, "target", problems);
  await checkTablePrivileges(source, sourceIds, ["SELECT"], "source", problems);
  await checkPartitionPrivileges(source, sourceIds, problems);
  await checkRowSecurity(source, sourceIds, "source", problems);
  await checkPublicationRights(source, config.source.publication, sourceIds, problems);
  await checkTablePrivileges(target, targetIds, ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"], "target", problems);
  await checkRowSecurity(target, targetIds, "target", problems);
  await checkStateSchemaRights(target, config.target.stateSchema, problems);
  if (plans) await checkSequencePrivileges(target, plans, problems);
}
