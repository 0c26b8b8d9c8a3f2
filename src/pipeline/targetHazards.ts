/**
 * Preflight checks for ways the target could end up different from the source *without an error*:
 * what the mapping compiler cannot see in the column lists. Each problem names the table and object
 * and says how to fix it (docs/exactness.md lists every case, with what happens and the test that
 * shows it).
 *
 * - Triggers and rules on target tables that fire under `session_replication_role = replica`
 *   (ENABLE ALWAYS / ENABLE REPLICA): they would change or drop the rows pgferry writes. (Rules are
 *   worse: the snapshot's COPY ignores them while the stream's statements are rewritten by them.)
 * - A target key compared under a nondeterministic collation (case- or accent-insensitive) that the
 *   source key does not use: rows distinct on the source would be merged by the upsert's
 *   `ON CONFLICT`, or an update or delete would hit another row.
 * - Enum labels of a mapped column that the target's enum lacks.
 * - Type modifiers that round (numeric scale, fractional-second precision), and user-defined types
 *   of one name defined differently (composite fields, a domain's base type).
 * - `money` columns while the two databases' `lc_monetary` format money differently: the same
 *   amount means something else on each side, and its text form is read wrongly.
 */
import type pg from "pg";
import { qualifiedName, quoteLiteral } from "../sql/quote.js";
import type { EdgePlan, TablePlan } from "../plan/plan.js";

type Queryable = Pick<pg.Pool, "query">;

/** Catalog queries take quoted names (to_regclass), so mixed-case names resolve. */
const sourceRel = (plan: TablePlan) => qualifiedName(plan.source);
const targetRel = (edge: EdgePlan) => qualifiedName(edge.table);

/** Each target column copied from a source column, with what both catalogs say of it. */
function* copiedColumns(
  plans: readonly TablePlan[],
  sourceFacts: Map<string, Map<string, ColumnFacts>>,
  targetFacts: Map<string, Map<string, ColumnFacts>>,
): Generator<{ plan: TablePlan; edge: EdgePlan; origin: { column: string }; column: EdgePlan["table"]["columns"][number]; from: ColumnFacts; to: ColumnFacts }> {
  for (const plan of plans) {
    for (const edge of plan.edges) {
      for (const [i, origin] of edge.origins.entries()) {
        if (origin.kind !== "column") continue;
        const column = edge.table.columns[i]!;
        const from = sourceFacts.get(sourceRel(plan))?.get(origin.column);
        const to = targetFacts.get(targetRel(edge))?.get(column.name);
        if (from && to) yield { plan, edge, origin, column, from, to };
      }
    }
  }
}

/** Writes that pgferry does under `session_replication_role = replica` fire only these. */
const ENABLED_LABEL: Record<string, string> = { A: "ENABLE ALWAYS", R: "ENABLE REPLICA" };

interface ReplicaFiringRow {
  id: string;
  relation: string;
  partition_of: string | null;
  kind: "trigger" | "rule";
  name: string;
  enabled: string;
  what: string;
}

/**
 * Triggers and rules of the target tables (and of their partitions, where the rows land) that fire
 * for replicated writes. A trigger cloned from a partitioned parent is reported with the parent
 * when the parent fires too (fixing the parent fixes its clones).
 */
const REPLICA_FIRING_SQL = `
WITH tree AS (
  SELECT r.id, to_regclass(r.id) AS root, t.relid
  FROM unnest($1::text[]) AS r(id)
  CROSS JOIN LATERAL (SELECT p.relid FROM pg_partition_tree(to_regclass(r.id)) AS p UNION SELECT to_regclass(r.id)) AS t(relid)
  WHERE to_regclass(r.id) IS NOT NULL
)
SELECT tree.id, format('%I.%I', n.nspname, c.relname) AS relation,
       CASE WHEN tree.relid <> tree.root THEN tree.root::regclass::text END AS partition_of,
       'trigger' AS kind, quote_ident(tg.tgname) AS name, tg.tgenabled::text AS enabled,
       concat_ws(' ',
         CASE WHEN tg.tgtype & 2 <> 0 THEN 'BEFORE' WHEN tg.tgtype & 64 <> 0 THEN 'INSTEAD OF' ELSE 'AFTER' END,
         concat_ws(' OR ',
           CASE WHEN tg.tgtype & 4 <> 0 THEN 'INSERT' END, CASE WHEN tg.tgtype & 16 <> 0 THEN 'UPDATE' END,
           CASE WHEN tg.tgtype & 8 <> 0 THEN 'DELETE' END, CASE WHEN tg.tgtype & 32 <> 0 THEN 'TRUNCATE' END),
         CASE WHEN tg.tgtype & 1 <> 0 THEN 'FOR EACH ROW' ELSE 'FOR EACH STATEMENT' END) AS what
FROM tree
JOIN pg_class c ON c.oid = tree.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_trigger tg ON tg.tgrelid = c.oid AND NOT tg.tgisinternal AND tg.tgenabled IN ('A', 'R')
WHERE NOT EXISTS (SELECT 1 FROM pg_trigger parent WHERE parent.oid = tg.tgparentid AND parent.tgenabled IN ('A', 'R'))
UNION ALL
SELECT tree.id, format('%I.%I', n.nspname, c.relname), CASE WHEN tree.relid <> tree.root THEN tree.root::regclass::text END,
       'rule', quote_ident(w.rulename), w.ev_enabled::text,
       CASE w.ev_type WHEN '2' THEN 'ON UPDATE' WHEN '3' THEN 'ON INSERT' WHEN '4' THEN 'ON DELETE' ELSE 'ON SELECT' END ||
         CASE WHEN w.is_instead THEN ' DO INSTEAD' ELSE ' DO ALSO' END
FROM tree
JOIN pg_class c ON c.oid = tree.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_rewrite w ON w.ev_class = c.oid AND w.rulename <> '_RETURN' AND w.ev_enabled IN ('A', 'R')
ORDER BY 1, 2, 4, 5`;

async function checkReplicaFiring(target: Queryable, tableIds: readonly string[], problems: string[]): Promise<void> {
  const { rows } = await target.query<ReplicaFiringRow>(REPLICA_FIRING_SQL, [tableIds]);
  for (const row of rows) {
    const where = row.partition_of ? `${row.relation} (a partition of ${row.partition_of})` : row.relation;
    const enabled = ENABLED_LABEL[row.enabled] ?? row.enabled;
    if (row.kind === "trigger") {
      problems.push(
        `target: trigger ${row.name} on ${where} (${row.what}) is ${enabled}, so it fires for the rows pgferry writes ` +
          `(session_replication_role = replica) and could change them; make it fire only for local writes ` +
          `(ALTER TABLE ${row.relation} ENABLE TRIGGER ${row.name}) or disable it (ALTER TABLE ${row.relation} DISABLE TRIGGER ${row.name})`,
      );
    } else {
      problems.push(
        `target: rule ${row.name} on ${where} (${row.what}) is ${enabled} RULE, so it rewrites the statements pgferry applies from the ` +
          `stream (while the snapshot's COPY ignores rules); make it apply only to local writes ` +
          `(ALTER TABLE ${row.relation} ENABLE RULE ${row.name}) or drop it (DROP RULE ${row.name} ON ${row.relation})`,
      );
    }
  }
}

/** A collation as both clusters can compare it: provider, locale and determinism (not its name or OID). */
const COLLATION_SIGNATURE = `concat_ws(':', co.collprovider, to_jsonb(co) ->> 'colliculocale', to_jsonb(co) ->> 'colllocale',
  co.collcollate, co.collctype, to_jsonb(co) ->> 'collicurules', co.collisdeterministic)`;

interface ColumnFacts {
  id: string;
  column: string;
  typmod: number;
  /** The type's name, or the element type's for an array (`numeric`, `timestamptz`, `mood`). */
  base: string;
  /** The enum (or array-of-enum element) type, qualified, or null. */
  enum_type: string | null;
  labels: string[] | null;
  collation: string | null;
  collation_signature: string | null;
  deterministic: boolean;
  /** typtype of the (element) type: c = composite, d = domain, e = enum, b = base, ... */
  kind: string;
  type_name: string;
  /** A composite's fields (`a integer, b text`) or a domain's base type (`numeric(12,2)`). */
  definition: string | null;
  domain_base: string | null;
  domain_typmod: number | null;
}

const COLUMN_FACTS_SQL = `
SELECT r.id, a.attname AS column, a.atttypmod AS typmod, bt.typname AS base,
       CASE WHEN bt.typtype = 'e' THEN format('%I.%I', btn.nspname, bt.typname) END AS enum_type,
       CASE WHEN bt.typtype = 'e' THEN (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = bt.oid) END AS labels,
       CASE WHEN a.attcollation <> 0 THEN format('%I.%I', con.nspname, co.collname) END AS collation,
       CASE WHEN a.attcollation <> 0 THEN ${COLLATION_SIGNATURE} END AS collation_signature,
       coalesce(co.collisdeterministic, true) AS deterministic,
       bt.typtype::text AS kind, format_type(bt.oid, NULL) AS type_name,
       CASE bt.typtype
         WHEN 'c' THEN (SELECT string_agg(format('%I %s', f.attname, format_type(f.atttypid, f.atttypmod)), ', ' ORDER BY f.attnum)
                        FROM pg_attribute f WHERE f.attrelid = bt.typrelid AND f.attnum > 0 AND NOT f.attisdropped)
         WHEN 'd' THEN format_type(bt.typbasetype, bt.typtypmod)
       END AS definition,
       CASE WHEN bt.typtype = 'd' THEN (SELECT typname FROM pg_type WHERE oid = bt.typbasetype) END AS domain_base,
       CASE WHEN bt.typtype = 'd' THEN bt.typtypmod END AS domain_typmod
FROM unnest($1::text[]) AS r(id)
JOIN pg_attribute a ON a.attrelid = to_regclass(r.id) AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem ELSE t.oid END
JOIN pg_namespace btn ON btn.oid = bt.typnamespace
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace con ON con.oid = co.collnamespace`;

interface UniqueIndex {
  id: string;
  index: string;
  primary: boolean;
  replident: boolean;
  columns: string[];
  collations: (string | null)[];
  signatures: (string | null)[];
  deterministic: boolean[];
}

/** Unique indexes over plain columns (those ON CONFLICT (columns) can infer as arbiters), with each column's collation. */
const UNIQUE_INDEXES_SQL = `
SELECT r.id, i.indexrelid::regclass::text AS index, i.indisprimary AS primary, i.indisreplident AS replident,
       array_agg(a.attname::text ORDER BY k.ord) AS columns,
       array_agg(CASE WHEN co.oid IS NOT NULL THEN format('%I.%I', con.nspname, co.collname) END ORDER BY k.ord) AS collations,
       array_agg(CASE WHEN co.oid IS NOT NULL THEN ${COLLATION_SIGNATURE} END ORDER BY k.ord) AS signatures,
       array_agg(coalesce(co.collisdeterministic, true) ORDER BY k.ord) AS deterministic
FROM unnest($1::text[]) AS r(id)
JOIN pg_index i ON i.indrelid = to_regclass(r.id)
CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[]) WITH ORDINALITY AS k(attnum, coll, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
LEFT JOIN pg_collation co ON co.oid = k.coll AND k.coll <> 0
LEFT JOIN pg_namespace con ON con.oid = co.collnamespace
WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY r.id, i.indexrelid, i.indisprimary, i.indisreplident
ORDER BY r.id, i.indisprimary DESC, i.indexrelid`;

function factsByTable(rows: readonly ColumnFacts[]): Map<string, Map<string, ColumnFacts>> {
  const byTable = new Map<string, Map<string, ColumnFacts>>();
  for (const row of rows) {
    let columns = byTable.get(row.id);
    if (!columns) {
      columns = new Map<string, ColumnFacts>();
      byTable.set(row.id, columns);
    }
    columns.set(row.column, row);
  }
  return byTable;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** How a source column's values are told apart on the source: its identity index's collation, else its own. */
interface Equality {
  signature: string | null;
  deterministic: boolean;
  name: string | null;
}

const DETERMINISTIC: Equality = { signature: null, deterministic: true, name: null };

/**
 * Nondeterministic collations on the target where pgferry matches rows (the key: ON CONFLICT's
 * arbiters, UPDATE/DELETE by key; keyless tables: every mapped column). Harmless only when the
 * source tells its rows apart under the very same collation.
 */
function checkCollations(
  plans: readonly TablePlan[],
  sourceFacts: Map<string, Map<string, ColumnFacts>>,
  sourceIndexes: readonly UniqueIndex[],
  targetFacts: Map<string, Map<string, ColumnFacts>>,
  targetIndexes: readonly UniqueIndex[],
  problems: string[],
): void {
  for (const plan of plans) {
    const identity = plan.source.identityKey;
    const identityIndex = identity
      ? (sourceIndexes.find((i) => i.id === sourceRel(plan) && (plan.source.replicaIdentity === "i" ? i.replident : i.primary) && sameSet(i.columns, identity)) ?? null)
      : null;
    const sourceEquality = (column: string): Equality => {
      const at = identityIndex?.columns.indexOf(column) ?? -1;
      if (identityIndex && at >= 0) {
        return { signature: identityIndex.signatures[at] ?? null, deterministic: identityIndex.deterministic[at] ?? true, name: identityIndex.collations[at] ?? null };
      }
      const facts = sourceFacts.get(sourceRel(plan))?.get(column);
      return facts ? { signature: facts.collation_signature, deterministic: facts.deterministic, name: facts.collation } : DETERMINISTIC;
    };
    for (const edge of plan.edges) {
      const where = `tables[${edge.index}]`;
      const target = edge.table.id;
      const columns = targetFacts.get(targetRel(edge));
      if (!columns) continue;
      const keyed = edge.table.keyIndexes.length > 0;
      const matched = keyed ? edge.table.keyIndexes.map((i) => edge.table.columns[i]!.name) : edge.table.columns.map((c) => c.name);
      // Where each matched column is compared under some collation: the column itself, and (keyed) every arbiter index.
      const comparisons: { column: string; collation: string | null; signature: string | null; deterministic: boolean; by: string }[] = [];
      for (const name of matched) {
        const facts = columns.get(name);
        if (facts) comparisons.push({ column: name, collation: facts.collation, signature: facts.collation_signature, deterministic: facts.deterministic, by: "the column" });
      }
      if (keyed) {
        for (const index of targetIndexes) {
          if (index.id !== targetRel(edge) || !sameSet(index.columns, matched)) continue;
          index.columns.forEach((column, i) =>
            comparisons.push({ column, collation: index.collations[i] ?? null, signature: index.signatures[i] ?? null, deterministic: index.deterministic[i] ?? true, by: `unique index ${index.index}` }),
          );
        }
      }
      const reported = new Set<string>();
      for (const c of comparisons) {
        if (c.deterministic || reported.has(c.column)) continue;
        const origin = edge.origins[edge.table.columns.findIndex((col) => col.name === c.column)];
        const from = origin?.kind === "column" ? sourceEquality(origin.column) : DETERMINISTIC;
        // Keyless tables may hold rows that are equal under the collation but different: never safe.
        if (keyed && origin?.kind === "column" && !from.deterministic && from.signature === c.signature) continue;
        reported.add(c.column);
        const type = edge.table.columns.find((col) => col.name === c.column)?.type ?? "text";
        const use = from.name && origin?.kind === "column" ? from.name : '"default"';
        const fix = c.by === "the column" ? `ALTER TABLE ${target} ALTER COLUMN ${c.column} TYPE ${type} COLLATE ${use}` : `recreate ${c.by} without COLLATE ${c.collation ?? "?"}`;
        problems.push(
          keyed
            ? `${where}: the key column ${target}.${c.column} compares under the nondeterministic collation ${c.collation ?? "?"} (${c.by}), but ` +
                (origin?.kind === "column"
                  ? `${plan.id}.${origin.column} is a key under ${from.name ?? "no collation"} on the source`
                  : `its value is derived on the source, where it need not be unique under that collation`) +
                `: rows that differ there only in case or accents would be merged into one by the upsert (ON CONFLICT), or updated and deleted ` +
                `in each other's place, without an error; ${fix}`
            : `${where}: ${target} has no key, so pgferry finds the row to update or delete by all its mapped values, and ${target}.${c.column} ` +
                `compares under the nondeterministic collation ${c.collation ?? "?"}: another row equal to it only under that collation could be ` +
                `changed instead, without an error; ALTER TABLE ${target} ALTER COLUMN ${c.column} TYPE ${type} COLLATE "default"`,
        );
      }
    }
  }
}

/** Source enum labels the target's enum lacks: a row carrying one would stop the stream (or the snapshot) later. */
function checkEnumLabels(
  plans: readonly TablePlan[],
  sourceFacts: Map<string, Map<string, ColumnFacts>>,
  targetFacts: Map<string, Map<string, ColumnFacts>>,
  problems: string[],
): void {
  for (const { plan, edge, origin, from, to } of copiedColumns(plans, sourceFacts, targetFacts)) {
    if (!from.labels || !to.labels) continue;
    const missing = from.labels.filter((label) => !to.labels!.includes(label));
    if (missing.length === 0) continue;
    const quoted = missing.map(quoteLiteral);
    problems.push(
      `tables[${edge.index}]: enum ${to.enum_type ?? to.base} of ${edge.table.id}.${to.column} lacks ${missing.length === 1 ? "the label" : "labels"} ` +
        `${quoted.join(", ")} that ${from.enum_type ?? from.base} of ${plan.id}.${origin.column} has, so a row carrying ${missing.length === 1 ? "it" : "one"} ` +
        `would stop the pipeline; add ${missing.length === 1 ? "it" : "them"} on the target first (${quoted.map((q) => `ALTER TYPE ${to.enum_type ?? to.base} ADD VALUE ${q}`).join("; ")})`,
    );
  }
}

const TIME_TYPES = new Set(["timestamp", "timestamptz", "time", "timetz"]);
const INTERVAL_FULL_RANGE = 0x7fff;
const INTERVAL_FULL_PRECISION = 0xffff;

/** `numeric(p,s)` from its type modifier, or null when unconstrained. */
function numericTypmod(typmod: number): { precision: number; scale: number } | null {
  if (typmod < 4) return null;
  const m = typmod - 4;
  const scale = m & 0x7ff;
  // Scales are 11-bit signed since PostgreSQL 15 (numeric(2,-3)).
  return { precision: (m >> 16) & 0xffff, scale: scale > 0x3ff ? scale - 0x800 : scale };
}

/**
 * Why a value of the source column would be changed *without an error* by the target column's type
 * modifier (rounded to fewer decimals or fractional-second digits, or cut to fewer interval fields),
 * or null when it cannot be. Modifiers that make a value fail instead (a varchar length, a numeric
 * precision too small for the integer digits) are not reported here.
 */
export function roundingModifier(base: string, sourceTypmod: number, targetTypmod: number): string | null {
  if (targetTypmod === -1 || targetTypmod === sourceTypmod) return null;
  if (base === "numeric") {
    const to = numericTypmod(targetTypmod);
    if (!to) return null;
    const from = numericTypmod(sourceTypmod);
    if (!from) return `rounded to ${to.scale} decimal(s)`;
    return to.scale < from.scale ? `rounded from ${from.scale} to ${to.scale} decimal(s)` : null;
  }
  if (TIME_TYPES.has(base)) {
    const from = sourceTypmod === -1 ? 6 : sourceTypmod;
    return targetTypmod < from ? `rounded from ${from} to ${targetTypmod} fractional-second digit(s)` : null;
  }
  if (base === "interval") {
    const range = (typmod: number) => (typmod === -1 ? INTERVAL_FULL_RANGE : (typmod >> 16) & 0x7fff);
    const precision = (typmod: number) => {
      const p = typmod === -1 ? INTERVAL_FULL_PRECISION : typmod & 0xffff;
      return p === INTERVAL_FULL_PRECISION ? 6 : p;
    };
    if (range(targetTypmod) !== INTERVAL_FULL_RANGE && range(targetTypmod) !== range(sourceTypmod)) return "cut to the target's interval fields";
    return precision(targetTypmod) < precision(sourceTypmod) ? `rounded from ${precision(sourceTypmod)} to ${precision(targetTypmod)} fractional-second digit(s)` : null;
  }
  return null;
}

const LENGTH_TYPES: Record<string, number> = { varchar: 4, bpchar: 4, bit: 0, varbit: 0 };

/**
 * A shorter length limit of a domain's base type (`varchar(5)` under `varchar(10)`): casting to the
 * domain, as the stream does, cuts the value to the limit without an error. (For plain columns the
 * limit is checked as the value is stored.)
 */
export function shorterLength(base: string, sourceTypmod: number, targetTypmod: number): string | null {
  const header = LENGTH_TYPES[base];
  if (header === undefined || targetTypmod === -1) return null;
  const to = targetTypmod - header;
  const from = sourceTypmod === -1 ? Infinity : sourceTypmod - header;
  // bit(n) is exact: a cast pads a shorter string with zeros as well as cutting a longer one.
  if (base === "bit") return to !== from ? `padded or cut to ${to} bit(s)` : null;
  return to < from ? `cut to ${to} ${base === "varbit" ? "bit(s)" : "character(s)"}` : null;
}

function checkTypeModifiers(
  plans: readonly TablePlan[],
  sourceFacts: Map<string, Map<string, ColumnFacts>>,
  targetFacts: Map<string, Map<string, ColumnFacts>>,
  problems: string[],
): void {
  for (const { plan, edge, origin, column, from, to } of copiedColumns(plans, sourceFacts, targetFacts)) {
    if (from.base !== to.base) continue;
    const change = roundingModifier(to.base, from.typmod, to.typmod);
    if (!change) continue;
    const sourceType = plan.source.columns.find((c) => c.name === origin.column)?.type ?? from.base;
    problems.push(
      `tables[${edge.index}]: ${edge.table.id}.${column.name} is ${column.type} but ${plan.id}.${origin.column} is ${sourceType}: ` +
        `values would be ${change} without an error; give the target column the source's type (ALTER TABLE ${edge.table.id} ALTER COLUMN ${column.name} TYPE ${sourceType}) ` +
        `or convert on purpose in the mapping (columns: { ${column.name}: { sql: "${origin.column}::${column.type}" } })`,
    );
  }
}

/**
 * User-defined types of the same name whose definitions differ. A composite value travels as text,
 * field by field in order, so swapped or retyped fields would land in the wrong field or be
 * converted; a domain over a narrower base type rounds like the base type itself would.
 */
function checkTypeDefinitions(
  plans: readonly TablePlan[],
  sourceFacts: Map<string, Map<string, ColumnFacts>>,
  targetFacts: Map<string, Map<string, ColumnFacts>>,
  problems: string[],
): void {
  for (const { plan, edge, origin, column, from, to } of copiedColumns(plans, sourceFacts, targetFacts)) {
    if (from.kind !== to.kind || from.definition === to.definition) continue;
    const where = `tables[${edge.index}]`;
    if (to.kind === "c") {
      problems.push(
        `${where}: composite type ${to.type_name} of ${edge.table.id}.${column.name} is (${to.definition ?? ""}) on the target but ` +
          `${from.type_name} of ${plan.id}.${origin.column} is (${from.definition ?? ""}) on the source; its values travel as text, field by field in order, ` +
          `so they would land in other fields or be converted; give the target type the source's fields in the source's order`,
      );
    } else if (to.kind === "d") {
      const [base, sourceTypmod, targetTypmod] = [to.domain_base ?? "", from.domain_typmod ?? -1, to.domain_typmod ?? -1];
      const change =
        from.domain_base === to.domain_base ? (roundingModifier(base, sourceTypmod, targetTypmod) ?? shorterLength(base, sourceTypmod, targetTypmod)) : "converted";
      if (from.domain_base === to.domain_base && change === null) continue;
      problems.push(
        `${where}: domain ${to.type_name} of ${edge.table.id}.${column.name} is over ${to.definition ?? "?"} on the target but ` +
          `${from.type_name} of ${plan.id}.${origin.column} is over ${from.definition ?? "?"} on the source: values would be ${change ?? "converted"} without an error; ` +
          `give the target domain the source's base type`,
      );
    }
  }
}

const MONEY_TYPES = new Set(["money", "money[]"]);

/**
 * The `lc_monetary` the database's own sessions get (what an application sees), whatever pgferry's
 * session pins: a database-level setting, else ALTER ROLE ALL, else the server's.
 */
async function databaseMonetary(db: pg.Pool): Promise<{ locale: string; sample: string }> {
  const client = await db.connect();
  try {
    const { rows } = await client.query<{ setting: string; source: string; database_setting: string | null; global_setting: string | null }>(
      `SELECT s.setting, s.source,
              (SELECT substr(c, 13) FROM pg_db_role_setting d CROSS JOIN unnest(d.setconfig) AS c
               WHERE d.setrole = 0 AND d.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) AND c LIKE 'lc\\_monetary=%') AS database_setting,
              (SELECT substr(c, 13) FROM pg_db_role_setting d CROSS JOIN unnest(d.setconfig) AS c
               WHERE d.setrole = 0 AND d.setdatabase = 0 AND c LIKE 'lc\\_monetary=%') AS global_setting
       FROM pg_settings s WHERE s.name = 'lc_monetary'`,
    );
    const row = rows[0]!;
    let locale = row.database_setting ?? row.global_setting;
    if (locale === null) {
      // A value from the session itself (startup options, a role's own setting) says nothing about the database.
      if (["client", "session", "user", "database user"].includes(row.source)) {
        const file = await client
          .query<{ setting: string }>("SELECT setting FROM pg_file_settings WHERE name = 'lc_monetary' AND applied ORDER BY seqno DESC LIMIT 1")
          .catch(() => ({ rows: [] as { setting: string }[] }));
        locale = file.rows[0]?.setting ?? row.setting;
      } else {
        locale = row.setting;
      }
    }
    await client.query("BEGIN");
    try {
      await client.query("SELECT set_config('lc_monetary', $1, true)", [locale]);
      const sample = await client.query<{ sample: string }>("SELECT (-1234567.891)::numeric::money::text AS sample");
      return { locale, sample: sample.rows[0]!.sample };
    } finally {
      await client.query("ROLLBACK");
    }
  } finally {
    client.release();
  }
}

async function checkMoney(target: pg.Pool, source: pg.Pool, plans: readonly TablePlan[], problems: string[]): Promise<void> {
  const columns: string[] = [];
  for (const plan of plans) {
    for (const edge of plan.edges) {
      edge.table.columns.forEach((column, i) => {
        const origin = edge.origins[i]!;
        const sourceType = origin.kind === "column" ? plan.source.columns.find((c) => c.name === origin.column)?.type : undefined;
        if (MONEY_TYPES.has(column.type) || (sourceType !== undefined && MONEY_TYPES.has(sourceType))) {
          columns.push(`${origin.kind === "column" ? `${plan.id}.${origin.column}` : `tables[${edge.index}]`} → ${edge.table.id}.${column.name}`);
        }
      });
    }
  }
  if (columns.length === 0) return;
  const [from, to] = await Promise.all([databaseMonetary(source), databaseMonetary(target)]);
  if (from.sample === to.sample) return;
  problems.push(
    `target: lc_monetary is '${to.locale}' in the target database but '${from.locale}' in the source (the target prints money as ${to.sample}, ` +
      `the source as ${from.sample}), so the money columns ${columns.join(", ")} would not keep their amounts; set the same lc_monetary on both ` +
      `(ALTER DATABASE <target database> SET lc_monetary = ${quoteLiteral(from.locale)}) or map them into numeric columns ({ sql: "<column>::numeric" })`,
  );
}

/**
 * Adds to `problems` every way the plans' targets could silently end up different from their
 * sources (see the file comment). Runs after the mapping compiled.
 */
export async function checkTargetHazards(target: pg.Pool, source: pg.Pool, plans: readonly TablePlan[], problems: string[]): Promise<void> {
  const targetIds = [...new Set(plans.flatMap((p) => p.edges.map(targetRel)))];
  const sourceIds = [...new Set(plans.map(sourceRel))];
  const [sourceColumns, targetColumns, sourceIndexes, targetIndexes] = await Promise.all([
    source.query<ColumnFacts>(COLUMN_FACTS_SQL, [sourceIds]),
    target.query<ColumnFacts>(COLUMN_FACTS_SQL, [targetIds]),
    source.query<UniqueIndex>(UNIQUE_INDEXES_SQL, [sourceIds]),
    target.query<UniqueIndex>(UNIQUE_INDEXES_SQL, [targetIds]),
  ]);
  const sourceFacts = factsByTable(sourceColumns.rows);
  const targetFacts = factsByTable(targetColumns.rows);
  const found: string[] = [];
  await checkReplicaFiring(target, targetIds, found);
  checkCollations(plans, sourceFacts, sourceIndexes.rows, targetFacts, targetIndexes.rows, found);
  checkEnumLabels(plans, sourceFacts, targetFacts, found);
  checkTypeModifiers(plans, sourceFacts, targetFacts, found);
  checkTypeDefinitions(plans, sourceFacts, targetFacts, found);
  await checkMoney(target, source, plans, found);
  // Grouped by entry, in file order (a stable sort keeps each entry's own order); "target: ..." first.
  const entry = (problem: string) => Number(/^tables\[(\d+)\]/.exec(problem)?.[1] ?? -1);
  problems.push(...found.sort((a, b) => entry(a) - entry(b)));
}
