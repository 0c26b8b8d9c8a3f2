/**
 * A mixed write workload against the fixture in test/fixtures/appSchema.ts: inserts, updates that
 * leave TOASTed columns untouched, key changes, deletes, keyless-table updates, multi-statement
 * transactions. Bounded by a count of transactions; stops early when `signal` aborts.
 */
import type pg from "pg";
import { runTransactions } from "../../tools/demo/transactionRunner.js";

const STATEMENTS: readonly ((n: number) => [string, unknown[]])[] = [
  (n) => [`INSERT INTO accounts (id, email, balance, meta) VALUES ($1, $2, $3, $4)`, [8_000_000 + n, `load${n}@example.com`, `${n}.0000000001`, JSON.stringify({ n })]],
  (n) => [`UPDATE accounts SET balance = balance + $1::numeric, meta = jsonb_set(coalesce(meta, '{}'), '{touched}', to_jsonb($2::int)) WHERE id = (SELECT id FROM accounts ORDER BY id OFFSET $2::int % greatest((SELECT count(*) FROM accounts), 1) LIMIT 1)`, [`0.${n}`, n]],
  (n) => [`DELETE FROM accounts WHERE id = (SELECT id FROM accounts ORDER BY id DESC OFFSET $1::int % 17 LIMIT 1)`, [n]],
  (n) => [`UPDATE accounts SET id = id + 100000000 WHERE id = (SELECT id FROM accounts WHERE id < 100000000 ORDER BY id OFFSET $1::int % 13 LIMIT 1)`, [n]],
  (n) => [`UPDATE items SET title = 'retitled ' || $1::int::text WHERE id = (SELECT id FROM items ORDER BY id OFFSET $1::int % greatest((SELECT count(*) FROM items), 1) LIMIT 1)`, [n]],
  (n) => [`INSERT INTO items (id, account_id, title, body, embedding) VALUES (md5('load' || $1::int::text)::uuid, $1::int, 'new', repeat('z', 5000 + $1::int % 100), (SELECT embedding FROM items LIMIT 1))`, [n]],
  (n) => [`DELETE FROM items WHERE id = (SELECT id FROM items ORDER BY id DESC OFFSET $1::int % 11 LIMIT 1)`, [n]],
  (n) => [`INSERT INTO events (id, at, kind) VALUES ($1::int, timestamptz '2026-11-20 00:00:00+00' + $2::int * interval '1 second', 'load')`, [1_000_000 + n, n % 86_400]],
  (n) => [`UPDATE events SET payload = jsonb_build_object('u', $1::int) WHERE id = (SELECT id FROM events ORDER BY id OFFSET $1::int % 50 LIMIT 1)`, [n]],
  (n) => [`INSERT INTO audit (actor, action, at) VALUES ('load', 'insert ' || $1::int::text, now())`, [n]],
  (n) => [`UPDATE audit SET action = 'updated ' || $1::int::text WHERE ctid = (SELECT ctid FROM audit ORDER BY at, action OFFSET $1::int % 29 LIMIT 1)`, [n]],
  (n) => [`DELETE FROM audit WHERE ctid = (SELECT ctid FROM audit ORDER BY at DESC, action OFFSET $1::int % 31 LIMIT 1)`, [n]],
];

export interface LoadOptions {
  transactions: number;
  concurrency?: number;
  /** Statements per transaction (1..n, varied). */
  maxStatements?: number;
  signal?: AbortSignal;
  seedOffset?: number;
}

/** Concurrent writers may collide on the same row or key; such a transaction is simply not counted. */
const COLLISIONS = new Set(["23505", "40P01", "40001"]);

export async function runWriteLoad(pool: pg.Pool, options: LoadOptions): Promise<number> {
  const { transactions, concurrency = 2, maxStatements = 4, seedOffset = 0, signal } = options;
  return runTransactions(pool, { transactions, concurrency, signal, forgiven: COLLISIONS }, async (client, t) => {
    for (let s = 0; s < 1 + (t % maxStatements); s += 1) {
      const [sql, params] = STATEMENTS[(t * 7 + s * 3) % STATEMENTS.length]!(seedOffset + t * maxStatements + s);
      await client.query(sql, params);
    }
  });
}
