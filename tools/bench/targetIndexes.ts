/**
 * `--target-indexes`: the secondary indexes the target tables have while the snapshot copies into
 * them, the same for both systems. `fixture` (the default) is the fixture's own DDL: one btree on
 * memory_entries and one on event_log. `realistic` adds what the new project's tables carry in
 * production: an HNSW index on the 1536-d embeddings, GIN on jsonb, expression, partial and
 * composite btree indexes, and one on the partitioned table (kept during pgferry's copy, as every
 * partitioned index is). Native logical replication copies into the indexed tables as they are;
 * pgferry (snapshot.deferIndexes, on by default) drops the deferrable ones and builds them after the
 * copy, and its snapshot counts as done only once they are built (pgferryRunner.ts).
 */
import { quoteIdent } from "./db.js";

export const TARGET_INDEX_SETS = ["fixture", "realistic"] as const;
export type TargetIndexes = (typeof TARGET_INDEX_SETS)[number];

/** The extra indexes of `set` on the fixture tables in `schema` (run after the fixture's DDL). */
export function targetIndexDdl(schema: string, set: TargetIndexes): string {
  if (set === "fixture") return "";
  const t = (table: string) => `${quoteIdent(schema)}.${quoteIdent(table)}`;
  return `
CREATE INDEX memory_entries_embedding_hnsw ON ${t("memory_entries")} USING hnsw (embedding vector_cosine_ops);
CREATE INDEX memory_entries_user_created ON ${t("memory_entries")} (user_id, created_at DESC);
CREATE INDEX memory_entries_metadata_gin ON ${t("memory_entries")} USING gin (metadata jsonb_path_ops);
CREATE INDEX user_profiles_email_lower ON ${t("user_profiles")} (lower(email));
CREATE INDEX user_profiles_paid_created ON ${t("user_profiles")} (created_at) WHERE plan <> 'free';
CREATE INDEX event_log_kind_at ON ${t("event_log")} (kind, at);
CREATE INDEX usage_analytics_user_at ON ${t("usage_analytics")} (user_id, at);`;
}

/** The report's note on the target's indexes. */
export function targetIndexNote(set: TargetIndexes): string {
  return set === "fixture"
    ? "Target indexes: the fixture's own (a btree on memory_entries.user_id and one on event_log (user_id, at))."
    : "Target indexes (--target-indexes realistic), the same for both systems: the fixture's two btree indexes plus HNSW (vector_cosine_ops) on " +
        "memory_entries.embedding, btree (user_id, created_at DESC) and GIN (metadata jsonb_path_ops) on memory_entries, lower(email) and a partial " +
        "btree on user_profiles, (kind, at) on event_log, and (user_id, at) on the partitioned usage_analytics. Native copies into the indexed tables; " +
        "pgferry builds its deferrable ones after each table's copy (snapshot.deferIndexes), and its snapshot ends when the last is built. " +
        "The binary COPY pipe copies into the fixture's DDL without them.";
}
