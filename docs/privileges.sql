-- pgferry: least-privilege roles for the source and the target database.
--
-- pgferry needs neither a superuser nor table ownership. Run this file with psql, once per database,
-- as the owner of the mapped tables or a superuser (on the target a superuser, or a role holding
-- SET on session_replication_role WITH GRANT OPTION: only those may grant it):
--
--   psql "$SOURCE_ADMIN_URL" -v side=source -v publication=pgferry \
--        -v tables='public.accounts, public.items, public.events' -f docs/privileges.sql
--   psql "$TARGET_ADMIN_URL" -v side=target \
--        -v tables='billing.accounts, ai_chat.items, analytics.events' -f docs/privileges.sql
--
-- Variables:
--   side          source | target
--   tables        the mapped tables on that side, comma-separated schema.table: every distinct
--                 `tables[].from` (source) or `tables[].to` (target) of the pgferry config
--   publication   source only: config `source.publication` (default pgferry)
--   state_schema  target only: config `target.stateSchema` (default _pgferry)
--   password      optional. Without it psql asks for the password when it creates the role
--                 (\password sends only a SCRAM hash, so the clear text reaches no server log).
--   bypassrls     optional, on | off (default off). Row-level security that applies to pgferry's
--                 role would hide rows from the snapshot (source) or check every write against a
--                 policy (target); pgferry's sessions run with row_security = off, so such a table
--                 is an error, and preflight names each one. `-v bypassrls=on` gives the role
--                 BYPASSRLS (only a superuser may). Managed services: Supabase's `postgres` role and
--                 Neon's console roles (members of neon_superuser) already have BYPASSRLS; elsewhere
--                 check with  SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user;
--
-- It is safe to run again, for example after adding tables to the mapping: the roles, the
-- publication and the state schema are created when missing and brought up to date otherwise.
--
-- The roles log in with a password: give them `hostssl ... scram-sha-256` lines in pg_hba.conf.
-- pgferry's replication connection is a *logical* one (replication=database): on the source it is
-- matched by the database name like any other connection, not by the `replication` keyword.
--
--   hostssl  appdb  pgferry_source  10.0.0.0/8  scram-sha-256      # source
--   hostssl  newdb  pgferry_target  10.0.0.0/8  scram-sha-256      # target

\set ON_ERROR_STOP on

\if :{?side}
\else
  DO $$ BEGIN RAISE EXCEPTION 'pass -v side=source or -v side=target'; END $$;
\endif
\if :{?tables}
\else
  DO $$ BEGIN RAISE EXCEPTION 'pass -v tables=''schema.table, ...'' (the mapped tables on this side)'; END $$;
\endif

SELECT :'side' = 'source' AS is_source, :'side' = 'target' AS is_target, current_database() AS dbname \gset
\if :is_source
\elif :is_target
\else
  DO $$ BEGIN RAISE EXCEPTION 'side must be source or target'; END $$;
\endif

-- Each schema holding a mapped table (USAGE is needed to reach the table by name).
SELECT string_agg(DISTINCT quote_ident(n.nspname), ', ') AS table_schemas
FROM unnest(string_to_array(:'tables', ',')) AS t(name)
JOIN pg_class c ON c.oid = trim(t.name)::regclass
JOIN pg_namespace n ON n.oid = c.relnamespace \gset

BEGIN;

\if :is_source
-- ---------------------------------------------------------------------------------------------
-- Source: REPLICATION (replication slot, exported snapshot, pgoutput stream) and SELECT on the
-- mapped tables (the snapshot copy). Nothing else: no write right, no ownership.
-- ---------------------------------------------------------------------------------------------
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgferry_source') AS create_role \gset
\if :create_role
CREATE ROLE pgferry_source LOGIN REPLICATION;
\else
ALTER ROLE pgferry_source LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
\endif

GRANT CONNECT ON DATABASE :"dbname" TO pgferry_source;
SELECT format('GRANT USAGE ON SCHEMA %s TO pgferry_source', :'table_schemas') \gexec
GRANT SELECT ON TABLE :tables TO pgferry_source;

-- The snapshot reads a partitioned table one leaf partition at a time (in parallel), and reading a
-- partition directly is checked against the partition's own privileges, not its root's.
-- A partition created later needs the same grant (pgferry's preflight names any that lack it).
SELECT format('GRANT SELECT ON TABLE %I.%I TO pgferry_source', n.nspname, c.relname)
FROM unnest(string_to_array(:'tables', ',')) AS t(name)
CROSS JOIN LATERAL pg_partition_tree(trim(t.name)::regclass) AS p
JOIN pg_class c ON c.oid = p.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.isleaf AND p.relid <> trim(t.name)::regclass \gexec

-- The publication. Creating or altering one takes ownership of its tables, which pgferry's role does
-- not have: the owner creates it here, and pgferry uses it as is while it holds exactly the mapped
-- tables with publish_via_partition_root (every partition then streams as its root).
\if :{?publication}
\else
\set publication pgferry
\endif
SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = :'publication') AS publication_exists \gset
\if :publication_exists
ALTER PUBLICATION :"publication" SET TABLE :tables;
ALTER PUBLICATION :"publication" SET (publish_via_partition_root = true);
\else
CREATE PUBLICATION :"publication" FOR TABLE :tables WITH (publish_via_partition_root = true);
\endif
\endif

\if :is_target
-- ---------------------------------------------------------------------------------------------
-- Target: write rights on the target tables, its own state schema, and the right to turn off the
-- target's triggers and FK checks for replicated rows (session_replication_role = replica, as native
-- logical replication does).
-- ---------------------------------------------------------------------------------------------
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgferry_target') AS create_role \gset
\if :create_role
CREATE ROLE pgferry_target LOGIN;
\else
ALTER ROLE pgferry_target LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
\endif

GRANT CONNECT ON DATABASE :"dbname" TO pgferry_target;
SELECT format('GRANT USAGE ON SCHEMA %s TO pgferry_target', :'table_schemas') \gexec
-- SELECT: upserts (ON CONFLICT) and keyless-table updates read the rows they change.
-- TRUNCATE: a source TRUNCATE is replicated, and a re-copy of a table empties it first
-- (without TRUNCATE pgferry falls back to DELETE for the re-copy, but a replicated TRUNCATE fails).
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE :tables TO pgferry_target;

-- Sequences behind the defaults of the target tables' columns (serial, bigserial, nextval(...)):
-- a column the mapping does not write takes its default on insert, which calls nextval. Identity
-- columns need no grant on their sequence.
SELECT format('GRANT USAGE ON SEQUENCE %s TO pgferry_target', s.oid::regclass)
FROM unnest(string_to_array(:'tables', ',')) AS t(name)
JOIN pg_attrdef ad ON ad.adrelid = trim(t.name)::regclass
JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
GROUP BY s.oid \gexec

-- pgferry's own state (checkpoint, table states) lives in this schema. Owning it is all pgferry
-- needs: it creates its tables there and needs no CREATE on the database.
\if :{?state_schema}
\else
\set state_schema _pgferry
\endif
CREATE SCHEMA IF NOT EXISTS :"state_schema" AUTHORIZATION pgferry_target;
ALTER SCHEMA :"state_schema" OWNER TO pgferry_target;

-- PostgreSQL 15+. (On 14 only a superuser may set it.)
GRANT SET ON PARAMETER session_replication_role TO pgferry_target;
\endif

-- ---------------------------------------------------------------------------------------------
-- Both sides: reverse replication loop prevention. With a `reverse` section both databases take
-- pgferry's writes, and each pipeline's apply session tags them with its replication origin
-- (pgferry_<slot>), so the pipeline running the other way leaves them out instead of carrying them
-- back. Both directions together need these grants (the origin is then required); one direction
-- alone tags its writes only when it may. They are superuser-only functions until granted.
-- ---------------------------------------------------------------------------------------------
\if :is_source
GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_reset() TO pgferry_source;
\else
GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_reset() TO pgferry_target;
\endif

\if :{?bypassrls}
\else
\set bypassrls off
\endif
\if :bypassrls
\if :is_source
ALTER ROLE pgferry_source BYPASSRLS;
\else
ALTER ROLE pgferry_target BYPASSRLS;
\endif
\endif

\if :{?password}
\if :is_source
ALTER ROLE pgferry_source PASSWORD :'password';
\else
ALTER ROLE pgferry_target PASSWORD :'password';
\endif
\elif :create_role
\if :is_source
\password pgferry_source
\else
\password pgferry_target
\endif
\endif

COMMIT;
