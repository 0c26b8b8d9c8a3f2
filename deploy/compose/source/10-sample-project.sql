-- The sample old project: a flat `public` schema as pgferry finds it. The postgres image runs this
-- once, on an empty data directory, in POSTGRES_DB as the superuser. test/integration/image.test.ts
-- runs it too, so what Compose shows is what the test proved.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TYPE plan_tier AS ENUM ('free', 'pro', 'enterprise');

CREATE TABLE organizations (
  id                bigserial PRIMARY KEY,
  name              text NOT NULL,
  plan_tier         plan_tier NOT NULL DEFAULT 'free',
  legacy_billing_id text,
  created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id              bigserial PRIMARY KEY,
  organization_id bigint NOT NULL REFERENCES organizations,
  email           text NOT NULL UNIQUE,
  password_hash   text NOT NULL,
  display_name    varchar(120),
  is_admin        boolean NOT NULL DEFAULT false,
  deleted_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id         bigserial PRIMARY KEY,
  user_id    bigint NOT NULL REFERENCES users,
  name       text NOT NULL,
  key_hash   text NOT NULL,
  scopes     text[] NOT NULL DEFAULT '{}',
  is_active  boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memory_entries (
  id         bigserial PRIMARY KEY,
  user_id    bigint NOT NULL REFERENCES users,
  content    text NOT NULL,
  embedding  vector(1536),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
  id              bigserial PRIMARY KEY,
  organization_id bigint NOT NULL REFERENCES organizations,
  amount          numeric(12, 2) NOT NULL,
  currency        char(3) NOT NULL DEFAULT 'EUR',
  paid_at         timestamptz NOT NULL DEFAULT now()
);

SELECT setseed(0.42);

INSERT INTO organizations (name, plan_tier, legacy_billing_id)
SELECT 'Organisation ' || i, (ARRAY['free', 'pro', 'enterprise']::plan_tier[])[1 + i % 3], 'LB-' || i
FROM generate_series(1, 20) AS i;

INSERT INTO users (organization_id, email, password_hash, display_name, is_admin, deleted_at)
SELECT 1 + i % 20, 'user' || i || '@example.com', md5('password' || i), 'User ' || i, i % 25 = 0,
       CASE WHEN i % 40 = 0 THEN now() - interval '3 days' END
FROM generate_series(1, 200) AS i;

INSERT INTO api_keys (user_id, name, key_hash, scopes, is_active)
SELECT 1 + i % 200, 'key ' || i, md5('key' || i),
       CASE WHEN i % 3 = 0 THEN ARRAY['read', 'write'] ELSE ARRAY['read'] END, i % 7 <> 0
FROM generate_series(1, 300) AS i;

-- 1536-d embeddings, as the real project's: the inner query refers to i, so each row gets its own.
INSERT INTO memory_entries (user_id, content, embedding)
SELECT 1 + i % 200, 'memory ' || i || ': ' || repeat('notes ', 20),
       (SELECT array_agg(round(random()::numeric, 4)::float4) FROM generate_series(1, 1536) AS d WHERE i > 0)::vector(1536)
FROM generate_series(1, 100) AS i;

INSERT INTO payments (organization_id, amount, currency, paid_at)
SELECT 1 + i % 20, round((random() * 500)::numeric, 2), (ARRAY['EUR', 'USD', 'GBP'])[1 + i % 3], now() - i * interval '1 hour'
FROM generate_series(1, 1000) AS i;

ANALYZE;
