#!/usr/bin/env bash
# pgferry's role on the target, made by docs/privileges.sql exactly as README "Security and least
# privilege" describes: pgferry_target may read and write the mapped tables, owns its state schema
# (_pgferry) and may SET session_replication_role. The postgres image runs this once, after
# 10-domain-schemas.sql; the tables are every `to` of compose/pgferry.yaml.
set -eo pipefail

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v side=target \
  -v tables='shared_services.organizations, auth_gateway.users, shared_services.profiles, security_service.api_keys, ai_chat.memory_entries, billing.payments' \
  -v password="$PGFERRY_DB_PASSWORD" \
  -f /pgferry/privileges.sql
