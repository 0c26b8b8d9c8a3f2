/**
 * Compiles the `tables` section against both live catalogs into the plan. Every problem is
 * collected (not thrown one by one) so the operator sees them all, each naming its `tables[i]` key:
 * unknown tables and columns, incompatible types, target keys that cannot be derived from the source
 * key, merged sources whose keys could collide or that cannot be told apart. The reverse pipeline's
 * plan is compiled here too, from the inverse entries of inverseMapping.ts (`inverse: true`).
 */
import type { CatalogColumn, CatalogGeneratedColumn, CatalogTable } from "../catalog/tableCatalog.js";
import type { TableMapping } from "../config/index.js";
import type { TargetColumn } from "./targetTable.js";
import type { ColumnOrigin, EdgePlan, TablePlan } from "./plan.js";
import { referencedColumns } from "./sqlRefs.js";

/** An entry to compile: a config entry, or one the inverse of a forward plan generated (inverseMapping.ts). */
export type CompiledMapping = TableMapping & {
  /** The entry writes only part of the target's required columns: it updates existing rows and skips that check. */
  updateOnly?: boolean;
  /** Its `where` routes rows between the edges of a reverse split instead of filtering them (EdgePlan.filterMode). */
  route?: boolean;
};

export interface CompileInput {
  mappings: readonly CompiledMapping[];
  sourceTables: ReadonlyMap<string, CatalogTable | null>;
  targetTables: ReadonlyMap<string, CatalogTable | null>;
  snapshotFormat: "auto" | "binary" | "text";
  /**
   * The mappings are the inverse of a forward plan (new → old). Then entries sharing a target are the
   * parts of one forward split, writing the same rows, so they need no discriminator and share the
   * key; an automatic conversion is accepted backwards (text into the enum or char it came from); and
   * a key computed from other columns than the source key (an old id kept in a column) is accepted:
   * whether a DELETE's old tuple carries those columns is checked against the source's replica
   * identity afterwards (inverseMapping.ts, checkReplicaIdentity), with the fix.
   */
  inverse?: boolean;
  /**
   * Both directions run (the config has a `reverse` section). A forward target keyed by a value
   * derived from the source key (md5 of the id) then matches rows on a key the reverse reads the old
   * key back from, when it has one ((source, legacy_id)): rows created on the new side have their own
   * derived value (their own uuid), which only such a key finds. The derived value becomes insert-only.
   */
  bidirectional?: boolean;
}

const JSON_TYPES = new Set(["json", "jsonb"]);
const TEXT_TYPES = new Set(["text", "character varying"]);

function baseType(type: string): string {
  return type.replace(/\(.*\)/, "").trim();
}

/** Whether a source value printed as text is accepted by the target column without loss. */
function typesCompatible(source: CatalogColumn, target: CatalogColumn): boolean {
  const [s, t] = [baseType(source.type), baseType(target.type)];
  if (s === t) return true;
  if (TEXT_TYPES.has(t) && !source.type.endsWith("[]")) return true; // varchar → text, enum → text, ...
  return JSON_TYPES.has(s) && JSON_TYPES.has(t);
}

interface EdgeDraft {
  mapping: CompiledMapping;
  index: number;
  source: CatalogTable;
  target: CatalogTable;
  columns: { column: CatalogColumn; origin: DraftOrigin }[];
}

type DraftOrigin = { kind: "column"; column: string } | { kind: "const"; value: string } | { kind: "sql"; expr: string; refs: string[] };

class Compiler {
  readonly problems: string[] = [];

  constructor(private readonly input: CompileInput) {}

  compile(): TablePlan[] {
    const drafts: EdgeDraft[] = [];
    const refused = new Set<string>();
    this.input.mappings.forEach((mapping, index) => {
      const draft = this.draft(mapping, index, refused);
      if (draft) drafts.push(draft);
    });
    const edges = drafts.map((d) => this.edge(d));
    if (!this.input.inverse) this.checkMerges(drafts, edges);

    const plans = new Map<string, TablePlan>();
    drafts.forEach((draft, i) => {
      let plan = plans.get(draft.mapping.from);
      if (!plan) {
        plan = { id: draft.mapping.from, source: draft.source, sourceColumns: [], keyInputs: [], edges: [] };
        plans.set(draft.mapping.from, plan);
      }
      plan.edges.push(edges[i]!);
    });
    for (const plan of plans.values()) resolveInputs(plan);
    return [...plans.values()];
  }

  private draft(mapping: CompiledMapping, index: number, refused: Set<string>): EdgeDraft | null {
    const where = `tables[${index}]`;
    const source = this.input.sourceTables.get(mapping.from);
    const target = this.input.targetTables.get(mapping.to);
    if (!source) this.problems.push(`${where}.from: source table ${mapping.from} does not exist (or is not a table)`);
    if (!target) this.problems.push(`${where}.to: target table ${mapping.to} does not exist; create it first (pgferry plan --ddl prints a definition)`);
    if (!source || !target) return null;
    if (source.identityKey === null && source.replicaIdentity !== "f") {
      if (!refused.has(mapping.from)) {
        this.problems.push(
          `${where}.from: ${mapping.from} has no replica identity, so the source refuses its UPDATEs and DELETEs once published; ` +
            `add a primary key or run ALTER TABLE ${mapping.from} REPLICA IDENTITY FULL`,
        );
      }
      refused.add(mapping.from);
      return null;
    }

    const problemsBefore = this.problems.length;
    const sourceNames = source.columns.map((c) => c.name);
    const columns: EdgeDraft["columns"] = [];
    const targeted = new Set<string>();
    /** Source columns a `columns` entry copies under a new name: they do not also pass through. */
    const renamed = new Set<string>();
    const generatedSource = (name: string) => source.generated.find((g) => g.name === name);
    for (const [name, spec] of Object.entries(mapping.columns)) {
      const column = target.columns.find((c) => c.name === name);
      const generatedTarget = target.generated.find((g) => g.name === name);
      if (generatedTarget) {
        this.problems.push(
          `${where}.columns.${name}: ${mapping.to}.${name} is a generated column (GENERATED ALWAYS AS (${generatedTarget.expr}) STORED): ` +
            "the target computes it and refuses a written value; remove it from columns",
        );
        continue;
      }
      if (!column) {
        this.problems.push(`${where}.columns.${name}: target table ${mapping.to} has no column ${name}`);
        continue;
      }
      targeted.add(name);
      if (typeof spec === "string" || "from" in spec) {
        const from = typeof spec === "string" ? spec : spec.from;
        const sourceColumn = source.columns.find((c) => c.name === from);
        const generated = generatedSource(from);
        if (generated) {
          renamed.add(from);
          columns.push({ column, origin: this.generatedOrigin(generated, sourceNames) });
        } else if (!sourceColumn) {
          this.problems.push(`${where}.columns.${name}: source table ${mapping.from} has no column ${from}`);
        } else if (!this.compatible(sourceColumn, column)) {
          this.problems.push(`${where}.columns.${name}: ${mapping.from}.${from} is ${sourceColumn.type} but ${mapping.to}.${name} is ${column.type}; convert it with { sql: "${from}::${column.type}" }`);
        } else {
          renamed.add(from);
          columns.push({ column, origin: { kind: "column", column: from } });
        }
      } else if ("value" in spec) {
        columns.push({ column, origin: { kind: "const", value: spec.value } });
      } else {
        this.refuseGeneratedRefs(`${where}.columns.${name}`, spec.sql, source);
        columns.push({ column, origin: { kind: "sql", expr: spec.sql, refs: referencedColumns(spec.sql, sourceNames) } });
      }
    }
    if (mapping.where !== undefined) this.refuseGeneratedRefs(`${where}.where`, mapping.where, source);
    for (const name of mapping.exclude) {
      if (!sourceNames.includes(name) && !generatedSource(name)) this.problems.push(`${where}.exclude: source table ${mapping.from} has no column ${name}`);
    }
    if (mapping.passthrough) {
      for (const sourceColumn of source.columns) {
        if (targeted.has(sourceColumn.name) || renamed.has(sourceColumn.name) || mapping.exclude.includes(sourceColumn.name)) continue;
        const column = target.columns.find((c) => c.name === sourceColumn.name);
        const generatedTarget = target.generated.find((g) => g.name === sourceColumn.name);
        if (generatedTarget) {
          this.problems.push(
            `${where}: ${mapping.to}.${sourceColumn.name} is a generated column (GENERATED ALWAYS AS (${generatedTarget.expr}) STORED), so the source's ` +
              `${mapping.from}.${sourceColumn.name} cannot be written to it; list ${sourceColumn.name} in exclude to let the target compute it`,
          );
        } else if (!column) {
          this.problems.push(`${where}: target table ${mapping.to} has no column ${sourceColumn.name} (source ${mapping.from}.${sourceColumn.name}); map it in columns or list it in exclude`);
        } else if (!this.compatible(sourceColumn, column)) {
          this.problems.push(`${where}: column ${sourceColumn.name} is ${sourceColumn.type} in ${mapping.from} but ${column.type} in ${mapping.to}`);
        } else {
          columns.push({ column, origin: { kind: "column", column: sourceColumn.name } });
        }
      }
      for (const generated of source.generated) {
        if (targeted.has(generated.name) || renamed.has(generated.name) || mapping.exclude.includes(generated.name)) continue;
        // Both sides generate it: each computes its own. Otherwise the value is evaluated like a derived column.
        if (target.generated.some((g) => g.name === generated.name)) continue;
        const column = target.columns.find((c) => c.name === generated.name);
        if (!column) {
          this.problems.push(`${where}: target table ${mapping.to} has no column ${generated.name} (source ${mapping.from}.${generated.name}, a generated column); map it in columns or list it in exclude`);
        } else {
          columns.push({ column, origin: this.generatedOrigin(generated, sourceNames) });
        }
      }
    }
    if (columns.length === 0 && this.problems.length === problemsBefore) {
      this.problems.push(`${where}: no column of ${mapping.to} is mapped`);
    }
    // An update-only entry never inserts, so what an insert needs is not its concern.
    for (const column of mapping.updateOnly ? [] : target.columns) {
      if (column.notNull && !column.hasDefault && !columns.some((c) => c.column.name === column.name)) {
        this.problems.push(`${where}: target column ${mapping.to}.${column.name} is NOT NULL without a default and nothing maps to it`);
      }
    }
    if (mapping.where !== undefined && mapping.where.includes(";")) {
      this.problems.push(`${where}.where: a filter is one SQL predicate, without ';'`);
    }
    return this.problems.length === problemsBefore ? { mapping, index, source, target, columns } : null;
  }

  /**
   * A value printed by the source type is parsed by the target type. Backwards (inverse), a value that
   * went forward by an automatic conversion returns into the type it came from; one the old type
   * refuses (an enum label made on the new side) fails its batch, named, and nothing is skipped.
   */
  private compatible(source: CatalogColumn, target: CatalogColumn): boolean {
    return typesCompatible(source, target) || (this.input.inverse === true && typesCompatible(target, source));
  }

  /**
   * A source generated column is not in pgoutput's rows before PostgreSQL 18, so its value is
   * evaluated by the source from its generation expression, on the snapshot and the stream alike.
   */
  private generatedOrigin(generated: CatalogGeneratedColumn, sourceNames: readonly string[]): DraftOrigin {
    return { kind: "sql", expr: generated.expr, refs: referencedColumns(generated.expr, sourceNames) };
  }

  /** The stream evaluates SQL over the columns pgoutput carries, and generated columns are not among them. */
  private refuseGeneratedRefs(where: string, expr: string, source: CatalogTable): void {
    for (const name of referencedColumns(expr, source.generated.map((g) => g.name))) {
      const generated = source.generated.find((g) => g.name === name)!;
      this.problems.push(
        `${where}: the SQL reads ${source.id}.${name}, a generated column, which the stream does not carry; write its expression instead: (${generated.expr})`,
      );
    }
  }

  private edge(draft: EdgeDraft): EdgePlan {
    const { mapping, index, source, target, columns } = draft;
    const where = `tables[${index}]`;
    const sourceKey = source.identityKey ?? [];
    // A target column is derivable from the source key when computing it needs nothing else.
    const derivable = (origin: DraftOrigin) =>
      origin.kind === "const" || (origin.kind === "column" ? sourceKey.includes(origin.column) : origin.refs.every((r) => sourceKey.includes(r)));
    let keyIndexes: number[] = [];
    let insertOnly: number[] = [];
    if (sourceKey.length > 0) {
      // The primary key is also among the unique keys: each key once, the primary key first.
      const candidates = [...new Map([target.primaryKey, ...target.uniqueKeys].filter((k): k is string[] => k !== null).map((k) => [k.join("\u0000"), k])).values()];
      const mappedBy = (key: string[], accept: (origin: DraftOrigin) => boolean) =>
        key.every((name) => {
          const mapped = columns.find((c) => c.column.name === name);
          return mapped !== undefined && accept(mapped.origin);
        });
      // The inverse may find an old row by an id the new row keeps in another column (legacy_id). The new
      // row carries it on inserts and updates; that a delete's old tuple does too is checked afterwards,
      // against the new table's replica identity (inverseMapping.ts, checkReplicaIdentity).
      const first = candidates.find((key) => mappedBy(key, derivable));
      const usable = this.stableKey(mapping, target, candidates, first, (key) => mappedBy(key, derivable)) ?? first ??
        (this.input.inverse ? candidates.find((key) => mappedBy(key, () => true)) : undefined);
      if (usable) {
        keyIndexes = usable.map((name) => columns.findIndex((c) => c.column.name === name));
        if (first && usable !== first) {
          // The derived key not matched on: written by inserts, never overwritten by updates.
          insertOnly = first.filter((name) => !usable.includes(name)).map((name) => columns.findIndex((c) => c.column.name === name));
        }
      } else {
        const keyTargets = sourceKey.map((k) => columns.find((c) => c.origin.kind === "column" && c.origin.column === k)?.column.name ?? k);
        this.problems.push(
          `${where}: ${mapping.to} needs a primary key or unique index on (${keyTargets.join(", ")}), the key of ${mapping.from}, ` +
            `so that changes can find their rows` +
            (candidates.length > 0 ? ` (its keys (${candidates.map((k) => k.join(", ")).join("), (")}) are not all derived from the source key)` : ""),
        );
      }
    }
    // An INSERT writes a GENERATED ALWAYS identity with OVERRIDING SYSTEM VALUE, but an UPDATE may set it
    // only to DEFAULT: fine for the key (never in an update's SET list), refused for any other column.
    columns.forEach(({ column }, i) => {
      if (column.identity === "a" && !keyIndexes.includes(i)) {
        this.problems.push(
          `${where}: ${mapping.to}.${column.name} is GENERATED ALWAYS AS IDENTITY but not the key pgferry matches rows on, so updates could not write it; ` +
            `ALTER TABLE ${mapping.to} ALTER COLUMN ${column.name} SET GENERATED BY DEFAULT, or exclude it`,
        );
      }
    });
    const filter = mapping.where === undefined ? null : { expr: mapping.where, refs: referencedColumns(mapping.where, source.columns.map((c) => c.name)) };
    // A column copied between identical types whose binary format is portable: binary COPY, and binary in the stream.
    const sameType = columns.map(({ column, origin }) => {
      if (origin.kind !== "column") return false;
      const from = source.columns.find((c) => c.name === origin.column)!;
      return from.type === column.type && from.binaryPortable && column.binaryPortable;
    });
    const identical = sameType.every(Boolean);
    const binary = identical && filter === null && mapping.hook === undefined && this.input.snapshotFormat !== "text";
    if (this.input.snapshotFormat === "binary" && !binary) {
      this.problems.push(`${where}: snapshot.format is binary but ${mapping.from} → ${mapping.to} transforms or converts columns (use auto or text)`);
    }
    const tableColumns: TargetColumn[] = columns.map(({ column }) => ({ name: column.name, type: column.type, castType: column.castType, typeOid: column.typeOid }));
    return {
      index,
      table: {
        id: `${target.schema}.${target.name}`, schema: target.schema, name: target.name, columns: tableColumns, keyIndexes,
        ...(mapping.updateOnly ? { updateOnly: true } : {}),
        ...(insertOnly.length > 0 ? { insertOnly } : {}),
      },
      // An array column is not passed through a binary stream: its values would have to nest in the statement's array parameter.
      origins: columns.map(({ origin, column }, i) => ({ ...origin, input: -1, ...(origin.kind === "column" ? { identical: sameType[i]! && !column.castType.endsWith("[]") } : {}) }) as ColumnOrigin),
      filter,
      ...(filter !== null && mapping.route ? { filterMode: "route" as const } : {}),
      hook: mapping.hook ?? null,
      ownership: null,
      copyFormat: binary ? "binary" : "text",
      evaluated: filter !== null || columns.some((c) => c.origin.kind === "sql"),
    };
  }

  /**
   * Bidirectional only: when the first usable key has a column derived by SQL that the reverse does not
   * read the old key back from, a usable key whose derived columns all are read back (the columns a
   * `reverse.columns` expression for a source key column reads), if the target has one.
   */
  private stableKey(
    mapping: CompiledMapping,
    target: CatalogTable,
    candidates: readonly string[][],
    first: string[] | undefined,
    usable: (key: string[]) => boolean,
  ): string[] | undefined {
    if (!this.input.bidirectional || !first || !mapping.reverse) return undefined;
    const sourceKey = this.input.sourceTables.get(mapping.from)?.identityKey ?? [];
    const targetNames = target.columns.map((c) => c.name);
    const readBack = new Set(
      Object.entries(mapping.reverse.columns)
        .filter(([column]) => sourceKey.includes(column))
        .flatMap(([, expr]) => referencedColumns(expr, targetNames)),
    );
    const derived = (name: string) => {
      const spec = mapping.columns[name];
      return spec !== undefined && typeof spec === "object" && "sql" in spec;
    };
    const stable = (key: string[]) => key.every((name) => !derived(name) || readBack.has(name));
    if (stable(first)) return undefined;
    return candidates.find((key) => usable(key) && stable(key));
  }

  /** Several sources into one target: their rows must be told apart, and their keys must not collide. */
  private checkMerges(drafts: readonly EdgeDraft[], edges: EdgePlan[]): void {
    const byTarget = new Map<string, number[]>();
    drafts.forEach((d, i) => byTarget.set(d.mapping.to, [...(byTarget.get(d.mapping.to) ?? []), i]));
    for (const [target, members] of byTarget) {
      if (members.length < 2) continue;
      const names = members.map((i) => `tables[${drafts[i]!.index}]`).join(", ");
      const constsOf = (edge: EdgePlan) =>
        edge.origins.flatMap((o, c) => (o.kind === "const" ? [{ column: edge.table.columns[c]!.name, type: edge.table.columns[c]!.type, value: o.value }] : []));
      const checked: number[] = [];
      for (const i of members) {
        const edge = edges[i]!;
        const where = `tables[${edge.index}]`;
        const consts = constsOf(edge);
        if (consts.length === 0) {
          this.problems.push(
            `${where}: ${target} is fed by several sources (${names}); give each a constant discriminator column ` +
              `(columns: { source: { value: ${drafts[i]!.mapping.from.split(".")[1]} } }) so a truncate or re-copy of one source touches only its rows`,
          );
          continue;
        }
        // Two sources are told apart by a column that both set to different constants.
        for (const j of checked) {
          const other = constsOf(edges[j]!);
          const apart = consts.some((c) => other.some((o) => o.column === c.column && o.value !== c.value));
          if (!apart) {
            this.problems.push(`${where}: its rows cannot be told apart from those of tables[${edges[j]!.index}] in ${target}; give both a discriminator column with different constant values`);
          }
        }
        checked.push(i);
        edge.ownership = consts;
      }
      // At most one source may keep its key unchanged; the others must derive it or include the discriminator.
      const raw = members.filter((i) => edges[i]!.table.keyIndexes.every((k) => edges[i]!.origins[k]!.kind === "column"));
      if (raw.length > 1) {
        for (const i of raw.slice(1)) {
          const edge = edges[i]!;
          const key = edge.table.keyIndexes.map((k) => edge.table.columns[k]!.name).join(", ");
          this.problems.push(
            `tables[${edge.index}]: the key (${key}) of ${target} comes unchanged from ${drafts[i]!.mapping.from}, as it does from another source: ` +
              `keys could collide; derive it (for example { sql: "md5('${drafts[i]!.mapping.from}:' || id)::uuid" }) or put the discriminator in the key`,
          );
        }
      }
    }
  }
}

/** Fixes the plan's source column order and points every origin at its input. */
function resolveInputs(plan: TablePlan): void {
  const needed = new Set<string>(plan.source.identityKey ?? []);
  for (const edge of plan.edges) {
    for (const origin of edge.origins) {
      if (origin.kind === "column") needed.add(origin.column);
      if (origin.kind === "sql") origin.refs.forEach((r) => needed.add(r));
    }
    edge.filter?.refs.forEach((r) => needed.add(r));
    // Keyless targets match rows on every mapped value; hooks see the whole row.
    if (edge.table.keyIndexes.length === 0 || edge.hook) plan.source.columns.forEach((c) => needed.add(c.name));
  }
  plan.sourceColumns = plan.source.columns.map((c) => c.name).filter((n) => needed.has(n));
  plan.keyInputs = (plan.source.identityKey ?? []).map((k) => plan.sourceColumns.indexOf(k));
  for (const edge of plan.edges) {
    edge.origins = edge.origins.map((o) => (o.kind === "column" ? { ...o, input: plan.sourceColumns.indexOf(o.column) } : o));
  }
}

export function compileMapping(input: CompileInput): { plans: TablePlan[]; problems: string[] } {
  const compiler = new Compiler(input);
  const plans = compiler.compile();
  // Grouped by entry, in file order (a stable sort keeps each entry's own order).
  const entry = (problem: string) => Number(/^tables\[(\d+)\]/.exec(problem)?.[1] ?? -1);
  return { plans, problems: [...compiler.problems].sort((a, b) => entry(a) - entry(b)) };
}
