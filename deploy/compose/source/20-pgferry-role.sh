#!/usr/bin/env bash
# pgferry's role on the source and the publication, made by docs/privileges.sql exactly as README
# "Security and least privilege" describes: pgferry_source with LOGIN REPLICATION and SELECT on the
# mapped tables (nothing else), and the publication created by the tables' owner. The postgres image
# runs this once, after 10-sample-project.sql; the tables are every `from` of compose/pgferry.yaml.
# (pgferry's replication connection is a logical one, which pg_hba.conf matches by database name:
# the image's `host all all all scram-sha-256` line admits it.)
set -eo pipefail

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v side=source -v publication=pgferry \
  -v tables='public.organizations, public.users, public.api_keys, public.memory_entries, public.payments' \
  -v password="$PGFERRY_DB_PASSWORD" \
  -f /pgferry/privileges.sql
