-- The new project's domain schemas, empty: pgferry runs no DDL on the target (`pgferry plan --ddl`
-- prints a starting point). The postgres image runs this once, in POSTGRES_DB as the superuser;
-- test/integration/image.test.ts runs it too.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE SCHEMA shared_services;
CREATE SCHEMA auth_gateway;
CREATE SCHEMA security_service;
CREATE SCHEMA ai_chat;
CREATE SCHEMA billing;

CREATE TABLE shared_services.organizations (
  id         bigint PRIMARY KEY,
  name       text NOT NULL,
  plan       text NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE auth_gateway.users (
  id               bigint PRIMARY KEY,
  organization_id  bigint NOT NULL REFERENCES shared_services.organizations,
  email            text NOT NULL UNIQUE,
  email_normalized text NOT NULL,
  password_hash    text NOT NULL,
  role             text NOT NULL,
  deleted_at       timestamptz,
  created_at       timestamptz NOT NULL
);

CREATE TABLE shared_services.profiles (
  user_id      bigint PRIMARY KEY REFERENCES auth_gateway.users,
  display_name text
);

CREATE TABLE security_service.api_keys (
  id         bigint PRIMARY KEY,
  user_id    bigint NOT NULL REFERENCES auth_gateway.users,
  name       text NOT NULL,
  key_hash   text NOT NULL,
  scopes     text[] NOT NULL,
  status     text NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE ai_chat.memory_entries (
  id         bigint PRIMARY KEY,
  user_id    bigint NOT NULL REFERENCES auth_gateway.users,
  content    text NOT NULL,
  embedding  vector(1536),
  created_at timestamptz NOT NULL
);

CREATE TABLE billing.payments (
  id              bigint PRIMARY KEY,
  organization_id bigint NOT NULL REFERENCES shared_services.organizations,
  amount_cents    bigint NOT NULL,
  currency        text NOT NULL,
  paid_at         timestamptz NOT NULL
);
