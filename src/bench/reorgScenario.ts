/**
 * pgferry with the reorganising mapping of `config/reorg.example.yaml` (public → domain schemas),
 * snapshot only, when that file exists and maps tables of the bench fixture. The target tables are
 * created from the fixture's DDL under their new names; entries keep whatever transform keys the
 * file gives them. Anything that does not fit ends in a note instead of failing the bench.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse } from "yaml";
import { FIXTURE_TABLES, tableDdl, type FixtureTable } from "./fixture.js";

export const REORG_CONFIG = resolve(import.meta.dirname, "../../config/reorg.example.yaml");

export interface ReorgPlan {
  /** Table entries to run (fixture tables only), as they appear in the file. */
  tables: Record<string, unknown>[];
  /** DDL creating their target tables (and schemas). */
  targetDdl: string;
  note: string;
}

/** The runnable part of the reorg config, or a note saying why there is none. */
export function planReorg(): ReorgPlan | { skip: string } {
  if (!existsSync(REORG_CONFIG)) return { skip: "config/reorg.example.yaml does not exist yet; skipped" };
  let doc: unknown;
  try {
    doc = parse(readFileSync(REORG_CONFIG, "utf8"));
  } catch (error) {
    return { skip: `config/reorg.example.yaml is not valid YAML (${(error as Error).message.split("\n")[0]}); skipped` };
  }
  const entries = (doc as { tables?: unknown } | null)?.tables;
  if (!Array.isArray(entries)) return { skip: "config/reorg.example.yaml has no tables list; skipped" };
  const tables = entries as Record<string, unknown>[];
  const fixtureTableOf = (entry: Record<string, unknown>) => (typeof entry.from === "string" ? entry.from.replace(/^public\./, "") : "");
  const sources = [...new Set(tables.map(fixtureTableOf))];
  const foreign = sources.filter((t) => !FIXTURE_TABLES.includes(t as FixtureTable));
  if (foreign.length > 0) {
    // Its mapping names the columns of another schema (the old project of the reorg tests); the
    // bench fixture cannot stand in for it.
    return {
      skip:
        `config/reorg.example.yaml maps ${sources.length} source tables of another schema (${foreign.slice(0, 4).join(", ")}, ...), ` +
        `${foreign.length} of which the bench fixture does not have; skipped (benchmarking it needs that schema's DDL and seed data under src/, ` +
        `which dist/bench can load)`,
    };
  }
  const ddl: string[] = ["CREATE EXTENSION IF NOT EXISTS vector;"];
  const schemas = new Set<string>();
  for (const entry of tables) {
    const [schema, name] = typeof entry.to === "string" ? entry.to.split(".") : [];
    if (!schema || !name) return { skip: `config/reorg.example.yaml: entry from ${String(entry.from)} has no schema.table target; skipped` };
    if (!schemas.has(schema)) ddl.push(`CREATE SCHEMA IF NOT EXISTS "${schema}";`);
    schemas.add(schema);
    // Identity columns under the new name; a mapping that renames or derives columns fails pgferry's preflight (reported).
    ddl.push(tableDdl(fixtureTableOf(entry) as FixtureTable, schema, name));
  }
  return { tables, targetDdl: ddl.join("\n"), note: `${tables.length} table mappings` };
}
