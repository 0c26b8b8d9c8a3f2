/**
 * The compiled plan: for each mapped source table, the target tables it feeds and, per target
 * column, the source column it comes from. Compiled once at start-up from the config and both live
 * catalogs; every problem is collected (not thrown one by one) so the operator sees them all.
 *
 * The mapping language grows in the mapping issue (rename, derive, filter, merge, split); the plan's
 * shape already allows several targets per source and keeps, per target column, where it came from.
 */
import type { TargetTable } from "../apply/types.js";
import type { CatalogColumn, CatalogTable } from "../catalog/tableCatalog.js";

export interface TargetPlan {
  table: TargetTable;
  /** Per target column (same order as `table.columns`), the source column it is copied from. */
  sourceColumns: string[];
  /** COPY format for the snapshot: binary where every column's type is the same on both sides. */
  copyFormat: "binary" | "text";
}

export interface TablePlan {
  /** The source table as named in the config (`schema.table`); the key of state rows and metrics. */
  id: string;
  source: CatalogTable;
  targets: TargetPlan[];
}

export interface MappingEntry {
  from: string;
  to: string;
}

export interface PlanInput {
  mappings: readonly MappingEntry[];
  sourceTables: ReadonlyMap<string, CatalogTable | null>;
  targetTables: ReadonlyMap<string, CatalogTable | null>;
  snapshotFormat: "auto" | "binary" | "text";
}

const JSON_TYPES = new Set(["json", "jsonb"]);

function baseType(type: string): string {
  return type.replace(/\(.*\)/, "").trim();
}

/** Whether a source value printed as text is accepted by the target column without loss. */
function typesCompatible(source: CatalogColumn, target: CatalogColumn): boolean {
  const [s, t] = [baseType(source.type), baseType(target.type)];
  if (s === t) return true;
  if (target.type === "text" || target.type === "character varying") return true;
  return JSON_TYPES.has(s) && JSON_TYPES.has(t);
}

function sameKey(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c) => b.includes(c));
}

export function compilePlan(input: PlanInput): { plans: TablePlan[]; problems: string[] } {
  const problems: string[] = [];
  const plans: TablePlan[] = [];
  input.mappings.forEach((mapping, index) => {
    const where = `tables[${index}]`;
    const source = input.sourceTables.get(mapping.from);
    const target = input.targetTables.get(mapping.to);
    if (!source) problems.push(`${where}.from: source table ${mapping.from} does not exist (or is not a table)`);
    if (!target) problems.push(`${where}.to: target table ${mapping.to} does not exist; create it first (pgferry does not run DDL on the target)`);
    if (!source || !target) return;

    if (source.identityKey === null && source.replicaIdentity !== "f") {
      problems.push(
        `${where}.from: ${mapping.from} has no replica identity, so the source refuses its UPDATEs and DELETEs once published; ` +
          `add a primary key or run ALTER TABLE ${mapping.from} REPLICA IDENTITY FULL`,
      );
      return;
    }

    const columns: TargetTable["columns"][number][] = [];
    const sourceColumns: string[] = [];
    let binary = input.snapshotFormat !== "text";
    for (const column of source.columns) {
      const targetColumn = target.columns.find((c) => c.name === column.name);
      if (!targetColumn) {
        problems.push(`${where}: target table ${mapping.to} has no column ${column.name} (source ${mapping.from}.${column.name})`);
        continue;
      }
      if (!typesCompatible(column, targetColumn)) {
        problems.push(`${where}: column ${column.name} is ${column.type} in ${mapping.from} but ${targetColumn.type} in ${mapping.to}`);
        continue;
      }
      if (column.type !== targetColumn.type || !column.binaryPortable || !targetColumn.binaryPortable) binary = false;
      columns.push({ name: targetColumn.name, type: targetColumn.type });
      sourceColumns.push(column.name);
    }
    for (const column of target.columns) {
      if (column.notNull && !column.hasDefault && !sourceColumns.includes(column.name)) {
        problems.push(`${where}: target column ${mapping.to}.${column.name} is NOT NULL without a default and nothing maps to it`);
      }
    }

    const key = source.identityKey ?? [];
    if (key.length > 0 && !target.uniqueKeys.some((k) => sameKey(k, key))) {
      problems.push(
        `${where}: ${mapping.to} needs a primary key or unique index on (${key.join(", ")}), the key of ${mapping.from}, ` +
          `so that changes can find their rows`,
      );
    }
    if (input.snapshotFormat === "binary" && !binary) {
      problems.push(`${where}: snapshot.format is binary but ${mapping.from} → ${mapping.to} has columns whose types differ or are not binary-portable`);
    }
    plans.push({
      id: mapping.from,
      source,
      targets: [
        {
          table: {
            id: `${target.schema}.${target.name}`,
            schema: target.schema,
            name: target.name,
            columns,
            keyIndexes: key.map((k) => sourceColumns.indexOf(k)).filter((i) => i >= 0),
          },
          sourceColumns,
          copyFormat: binary ? "binary" : "text",
        },
      ],
    });
  });
  return { plans, problems };
}
