/**
 * A benchmark of a replicator that lost or garbled rows would be meaningless, so every session ends
 * by comparing each table on both sides: row count and an order-independent hash of the rows
 * (embeddings enter through their norm, which is cheap and still changes with every vector update).
 */
import { withClient, quoteIdent } from "./db.js";
import { FIXTURE_TABLES, type FixtureTable } from "./fixture.js";

function rowHashSql(table: FixtureTable, schema: string): string {
  const t = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const row =
    table === "memory_entries"
      ? `concat_ws('|', r.id, r.user_id, r.kind, md5(r.content), r.metadata, vector_norm(r.embedding), r.importance, r.created_at, r.updated_at)`
      : "r::text";
  return `SELECT count(*)::text AS rows, coalesce(sum(hashtext(${row})::bigint), 0)::text AS hash FROM ${t} AS r`;
}

async function tableHashes(url: string, schema: string): Promise<Map<FixtureTable, string>> {
  return withClient(url, async (c) => {
    await c.query("SET TimeZone = 'UTC'; SET extra_float_digits = 1");
    const result = new Map<FixtureTable, string>();
    for (const table of FIXTURE_TABLES) {
      const { rows } = await c.query<{ rows: string; hash: string }>(rowHashSql(table, schema));
      result.set(table, `${rows[0]!.rows} rows, hash ${rows[0]!.hash}`);
    }
    return result;
  });
}

/** Tables whose content differs, as "table: source … / target …" lines (empty when all match). */
export async function verifyTables(sourceUrl: string, targetUrl: string, targetSchema: string): Promise<string[]> {
  const [source, target] = await Promise.all([tableHashes(sourceUrl, "public"), tableHashes(targetUrl, targetSchema)]);
  return FIXTURE_TABLES.flatMap((table) =>
    source.get(table) === target.get(table) ? [] : [`${table}: source ${source.get(table)} / target ${target.get(table)}`],
  );
}
