/**
 * The inverse of the forward mapping, for the reverse pipeline (new → old, docs/reverse.md). It is
 * written as ordinary `tables` entries (from = the forward target, to = the forward source) derived
 * from the forward COMPILED plan, so passed-through columns are already spelled out, and compiled by
 * the same compiler with the catalogs swapped: the reverse runs the same pipeline code on the same
 * kind of plan. Renames invert by themselves; a constant becomes the filter that routes a row back to
 * the source it came from; what SQL derived must be given back by the entry's `reverse` key.
 */
import type { CatalogTable } from "../catalog/tableCatalog.js";
import type { ColumnSource, TableMapping } from "../config/index.js";
import { quoteIdent, quoteLiteral } from "../sql/quote.js";
import { compileMapping, type CompileInput } from "./mappingCompiler.js";
import type { ColumnOrigin, EdgePlan, TablePlan } from "./plan.js";

export interface ReverseMapping extends TableMapping {
  /** The forward `tables[i]` entry this inverts: problems and the reverse plan's edges name it. */
  forwardIndex: number;
  /**
   * It does not write every column the old table needs for an insert (one part of a split), so it
   * only updates existing rows and its deletes are not carried back.
   */
  updateOnly: boolean;
  /** Its `where` was built from the forward constants: it routes rows back (EdgePlan.filterMode `route`). */
  route?: true;
}

export interface InverseMappings {
  mappings: ReverseMapping[];
  /** What keeps an entry from being carried back, each naming its forward `tables[i]` key. */
  problems: string[];
  /** Decisions the operator should know of: forward-only entries, update-only parts, merges, shared columns. */
  notes: string[];
}

type ReverseSpec = Exclude<TableMapping["reverse"], false | undefined>;

const NO_REVERSE_KEYS: ReverseSpec = { columns: {}, forwardOnly: [] };

/** One reverse entry per forward edge (in `tables` order) unless the edge is forward-only. */
export function invertMappings(plans: readonly TablePlan[], mappings: readonly TableMapping[]): InverseMappings {
  const result: InverseMappings = { mappings: [], problems: [], notes: [] };
  const edges = plans.flatMap((plan) => plan.edges.map((edge) => ({ plan, edge }))).sort((a, b) => a.edge.index - b.edge.index);
  for (const { plan, edge } of edges) {
    const mapping = mappings[edge.index];
    if (!mapping) throw new Error(`invertMappings: the plan names tables[${edge.index}], which the mappings do not have`);
    const inverse = invertEdge(plan, edge, mapping, result);
    if (inverse) result.mappings.push(inverse);
  }
  noteMerges(edges.map((e) => e.edge), mappings, result);
  noteSharedColumns(plans, result);
  return result;
}

function invertEdge(plan: TablePlan, edge: EdgePlan, mapping: TableMapping, out: InverseMappings): ReverseMapping | null {
  const where = `tables[${edge.index}]`;
  const named = `${where} ${mapping.from} → ${mapping.to}`;
  if (mapping.reverse === false) {
    out.notes.push(`${named}: forward-only (reverse: false)`);
    return null;
  }
  const spec = mapping.reverse ?? NO_REVERSE_KEYS;
  // What a hook did to a row, pgferry cannot know: only a reverse hook can say how to undo it.
  if (edge.hook !== null && spec.hook === undefined) {
    out.notes.push(
      `${named}: forward-only: its hook reshapes rows in a way pgferry cannot invert; to carry changes back, ` +
        `add reverse: { hook: <module> } that turns a row of ${mapping.to}, mapped back to ${mapping.from}'s columns, into the row to write`,
    );
    return null;
  }
  const problemsBefore = out.problems.length;
  const columns: Record<string, ColumnSource> = {};
  /** Source column → the target column it is copied to (and carried back from). */
  const copies = new Map<string, string>();
  const routing: string[] = [];
  edge.origins.forEach((origin, i) => {
    const target = edge.table.columns[i]!.name;
    if (origin.kind === "column") {
      const first = copies.get(origin.column);
      if (first === undefined) {
        copies.set(origin.column, target);
        columns[origin.column] = target;
      } else {
        out.notes.push(`${named}: ${origin.column} is copied to ${first} and ${target}; it is carried back from ${first}`);
      }
    } else if (origin.kind === "const") {
      // The constants say which source a row of a merged target came from: they route it back.
      routing.push(`${quoteIdent(target)} = ${quoteLiteral(origin.value)}`);
    }
  });
  for (const [column, expr] of Object.entries(spec.columns)) {
    const copied = copies.get(column);
    if (copied !== undefined) {
      out.problems.push(
        `${where}.reverse.columns.${column}: ${column} is already carried back from ${mapping.to}.${copied} (the inverse of its copy); ` +
          "the reverse would write it twice: remove this entry",
      );
      continue;
    }
    columns[column] = { sql: expr };
  }
  const written = new Set(Object.keys(columns));
  checkDerived(edge, mapping, spec, written, out);
  checkForwardOnly(edge, where, mapping, spec, out);
  checkSourceKey(plan, edge, mapping, spec, written, out);
  if (out.problems.length > problemsBefore) return null;

  const required = plan.source.columns.filter((c) => c.notNull && !c.hasDefault && !written.has(c.name)).map((c) => c.name);
  if (required.length > 0) {
    out.notes.push(
      `${named}: carried back as updates only: it does not write ${required.join(", ")} (NOT NULL without a default in ${mapping.from}), ` +
        `so a row new in ${mapping.to} is not inserted; a change updates the existing row, and deletes are not carried back`,
    );
  }
  return {
    from: mapping.to,
    to: mapping.from,
    columns,
    exclude: [],
    passthrough: false,
    ...(routing.length > 0 ? { where: routing.join(" AND "), route: true as const } : {}),
    ...(spec.hook !== undefined ? { hook: spec.hook } : {}),
    forwardIndex: edge.index,
    updateOnly: required.length > 0,
  };
}

/** A `{ sql }` target column goes back only through the source columns it read: each must be written back. */
function checkDerived(edge: EdgePlan, mapping: TableMapping, spec: ReverseSpec, written: ReadonlySet<string>, out: InverseMappings): void {
  edge.origins.forEach((origin, i) => {
    const target = edge.table.columns[i]!.name;
    if (origin.kind !== "sql" || spec.forwardOnly.includes(target)) return;
    const missing = origin.refs.filter((ref) => !written.has(ref));
    if (missing.length === 0) return;
    const wanted = missing.map((ref) => `reverse.columns.${ref}: "<SQL over ${mapping.to}>"`).join(", ");
    out.problems.push(
      `tables[${edge.index}].columns.${target}: ${target} is derived ({ sql: ${JSON.stringify(origin.expr)} }) from ${missing.join(", ")}; ` +
        `give ${missing.length > 1 ? "each" : "it"} a reverse expression (${wanted}) or list ${target} in reverse.forwardOnly`,
    );
  });
}

/** forwardOnly exempts a derived column from being carried back; any other name is a mistake worth saying. */
function checkForwardOnly(edge: EdgePlan, where: string, mapping: TableMapping, spec: ReverseSpec, out: InverseMappings): void {
  for (const name of spec.forwardOnly) {
    const i = edge.table.columns.findIndex((c) => c.name === name);
    const origin = edge.origins[i];
    if (origin?.kind === "sql") continue;
    const why =
      origin === undefined
        ? `this entry writes no column ${name} of ${mapping.to}`
        : origin.kind === "column"
          ? `${mapping.to}.${name} is a copy of ${origin.column}, and a copy is always carried back`
          : `${mapping.to}.${name} is a constant, which routes rows back instead`;
    out.problems.push(`${where}.reverse.forwardOnly: ${why}; list only columns derived by { sql }`);
  }
}

/** The reverse finds the old row by the old key, so every key column must be written back. */
function checkSourceKey(plan: TablePlan, edge: EdgePlan, mapping: TableMapping, spec: ReverseSpec, written: ReadonlySet<string>, out: InverseMappings): void {
  for (const key of plan.source.identityKey ?? []) {
    if (!written.has(key)) {
      out.problems.push(
        `tables[${edge.index}].reverse: the key column ${mapping.from}.${key} is not carried back, so a change in ${mapping.to} cannot find its row in ${mapping.from}; ` +
          keySuggestion(plan, edge, mapping, key),
      );
    } else if (key in spec.columns) {
      out.notes.push(
        `tables[${edge.index}] ${mapping.from} → ${mapping.to}: the key ${key} of ${mapping.from} is computed from ${mapping.to} (${spec.columns[key]}), ` +
          "not copied from its key; see docs/reverse.md (derived keys) for rows that have no such value and for deletes",
      );
    }
  }
}

function keySuggestion(plan: TablePlan, edge: EdgePlan, mapping: TableMapping, key: string): string {
  const castType = plan.source.columns.find((c) => c.name === key)?.castType ?? "text";
  // A target column that is the key cast to another type (legacy_id: { sql: "id::text" }) still holds it;
  // one that hashes it (md5('api_keys:' || id)::uuid) does not.
  const isCast = (expr: string) => {
    const bare = expr.replace(/[\s()"]/g, "").toLowerCase();
    return bare.startsWith(`${key.toLowerCase()}::`) && /^[a-z_][a-z0-9_]*(\[\])?$/.test(bare.slice(key.length + 2));
  };
  const keeper = edge.origins.findIndex((o) => o.kind === "sql" && isCast(o.expr));
  if (keeper >= 0) {
    const column = edge.table.columns[keeper]!.name;
    return `read it back from a column that keeps it, e.g. reverse.columns.${key}: "${column}::${castType}"`;
  }
  return `keep it in a column of ${mapping.to} (e.g. legacy_${key}: { sql: "${key}::text" }) and read it back with reverse.columns.${key}: "legacy_${key}::${castType}"`;
}

/** A merged target splits back by its constants; a row that carries none of them belongs to no source. */
function noteMerges(edges: readonly EdgePlan[], mappings: readonly TableMapping[], out: InverseMappings): void {
  const byTarget = new Map<string, EdgePlan[]>();
  for (const edge of edges) byTarget.set(mappings[edge.index]!.to, [...(byTarget.get(mappings[edge.index]!.to) ?? []), edge]);
  for (const [target, members] of byTarget) {
    if (members.length < 2) continue;
    const routes = members.map((edge) => {
      const inverse = out.mappings.find((m) => m.forwardIndex === edge.index);
      return `tables[${edge.index}] ${inverse ? `where ${inverse.where ?? "(no constants)"}` : "(not carried back)"}`;
    });
    out.notes.push(
      `${target} is a merge: each row goes back to the source whose constants it carries (${routes.join("; ")}); ` +
        "a row that matches no carried-back entry's constants is reported as a conflict",
    );
  }
}

/** Parts of a split write the same old row: the key is theirs in common; any other shared column is a race. */
function noteSharedColumns(plans: readonly TablePlan[], out: InverseMappings): void {
  const byOldTable = new Map<string, ReverseMapping[]>();
  for (const m of out.mappings) byOldTable.set(m.to, [...(byOldTable.get(m.to) ?? []), m]);
  for (const [oldTable, parts] of byOldTable) {
    if (parts.length < 2) continue;
    const key = plans.find((p) => p.id === oldTable)?.source.identityKey ?? [];
    const writers = new Map<string, number[]>();
    for (const part of parts) {
      for (const column of Object.keys(part.columns)) writers.set(column, [...(writers.get(column) ?? []), part.forwardIndex]);
    }
    for (const [column, indexes] of writers) {
      if (indexes.length < 2 || key.includes(column)) continue;
      out.notes.push(`${oldTable}.${column}: written back by ${indexes.map((i) => `tables[${i}]`).join(" and ")}; the later change wins`);
    }
  }
}

/**
 * Compiles the inverse entries (source catalogs = the new database, target = the old one). Each
 * problem and each edge names the forward entry (`tables[i].reverse...`), never the generated
 * entry's position, since that is the key an operator edits.
 */
export function compileInverseMappings(
  input: Omit<CompileInput, "mappings" | "inverse"> & { mappings: readonly ReverseMapping[] },
): { plans: TablePlan[]; problems: string[] } {
  const { plans, problems } = compileMapping({ ...input, sourceTables: keyedWhenFull(input.sourceTables), inverse: true });
  const forward = (k: number) => input.mappings[k]?.forwardIndex ?? k;
  for (const plan of plans) for (const edge of plan.edges) edge.index = forward(edge.index);
  const compiled = problems.map((problem) =>
    problem
      .replace(/tables\[(\d+)\]/g, (_m, k: string) => `tables[${forward(Number(k))}].reverse`)
      // from, to, where and exclude of a generated entry are not keys the operator wrote.
      .replace(/^(tables\[\d+\]\.reverse)\.(?:from|to|where|exclude)(?=:)/, "$1"),
  );
  const entry = (problem: string) => Number(/^tables\[(\d+)\]/.exec(problem)?.[1] ?? -1);
  return { plans, problems: [...compiled, ...checkReplicaIdentity(plans)].sort((a, b) => entry(a) - entry(b)) };
}

/**
 * A new table with REPLICA IDENTITY FULL sends the whole old row with every update and delete, so
 * its primary key is in each of them: the inverse finds old rows by key through it. (Matching old
 * rows on all their mapped values, as a keyless table is, fails through reverse expressions and
 * hooks that do not give a row back exactly.) Without a primary key the table stays keyless.
 */
function keyedWhenFull(tables: ReadonlyMap<string, CatalogTable | null>): Map<string, CatalogTable | null> {
  return new Map(
    [...tables].map(([id, t]) => [id, t && t.replicaIdentity === "f" && t.primaryKey ? { ...t, identityKey: t.primaryKey } : t]),
  );
}

/** The new-side columns an origin reads. */
function originReads(origin: ColumnOrigin): string[] {
  return origin.kind === "column" ? [origin.column] : origin.kind === "sql" ? origin.refs : [];
}

/**
 * A DELETE on the new side carries only the new table's replica identity (unless it is FULL). Every
 * column a routing filter reads and every column the old key is computed from must be in it, or the
 * delete could neither be routed back nor find its old row, and pgferry will not guess. The fix
 * names a unique key of the new table that covers every column its edges need, if one does.
 */
export function checkReplicaIdentity(plans: readonly TablePlan[]): string[] {
  const problems: string[] = [];
  for (const plan of plans) {
    const table = plan.source;
    if (table.replicaIdentity === "f") continue;
    const identity = table.identityKey ?? [];
    const needs = plan.edges.map((edge) => ({
      edge,
      route: edge.filterMode === "route" ? (edge.filter?.refs ?? []) : [],
      key: [...new Set(edge.table.keyIndexes.flatMap((k) => originReads(edge.origins[k]!)))],
    }));
    // A new identity replaces the old one: it must cover what every edge needs, not only what is missing.
    const wanted = [...new Set(needs.flatMap((n) => [...n.key, ...n.route]))];
    for (const { edge, route, key } of needs) {
      const keyMissing = key.filter((c) => !identity.includes(c));
      const routeMissing = route.filter((c) => !identity.includes(c) && !keyMissing.includes(c));
      if (keyMissing.length === 0 && routeMissing.length === 0) continue;
      const them = (columns: string[]) => (columns.length > 1 ? "them" : "it");
      const lacking = [
        ...(keyMissing.length > 0 ? [`${keyMissing.join(", ")} (the key of ${edge.table.id} is computed from ${them(keyMissing)})`] : []),
        ...(routeMissing.length > 0 ? [`${routeMissing.join(", ")} (the routing filter reads ${them(routeMissing)})`] : []),
      ];
      const routed = route.some((c) => !identity.includes(c));
      const could = keyMissing.length > 0 && routed ? `neither be routed back nor find its row in ${edge.table.id}` : routed ? "not be routed back" : `not find its row in ${edge.table.id}`;
      problems.push(
        `tables[${edge.index}].reverse: a DELETE on ${plan.id} carries only its replica identity (${identity.join(", ")}), not ${lacking.join(" or ")}, ` +
          `so it could ${could}; ${identityFix(table, wanted)}`,
      );
    }
  }
  return problems;
}

/** ALTER TABLE ... REPLICA IDENTITY USING INDEX over a unique key that covers `wanted`, or FULL. */
function identityFix(table: CatalogTable, wanted: readonly string[]): string {
  const nullable = (key: readonly string[]) => key.filter((c) => !table.columns.find((col) => col.name === c)?.notNull);
  const fitting = table.uniqueKeys
    .filter((key) => wanted.every((c) => key.includes(c)))
    .sort((a, b) => nullable(a).length - nullable(b).length || a.length - b.length)[0];
  const full = `ALTER TABLE ${table.id} REPLICA IDENTITY FULL`;
  if (!fitting) {
    return `${full} (no unique index of ${table.id} covers (${wanted.join(", ")}); one that did, over NOT NULL columns, could be its REPLICA IDENTITY USING INDEX)`;
  }
  // USING INDEX takes only an index whose columns are NOT NULL: the same ALTER TABLE can make them so.
  const setNotNull = nullable(fitting).map((c) => `ALTER COLUMN ${c} SET NOT NULL, `).join("");
  return `ALTER TABLE ${table.id} ${setNotNull}REPLICA IDENTITY USING INDEX <its unique index on (${fitting.join(", ")})>, or ${full}`;
}
