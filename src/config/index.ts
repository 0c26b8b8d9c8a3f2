/**
 * Loads the config: YAML → environment interpolation → schema (defaults, bounds) → typed Config.
 * Every problem is collected and thrown as one ConfigError, so an operator fixes a file in one pass.
 * The only module that reads the environment; everything else receives a Config.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { ConfigError } from "../errors.js";
import { interpolateTree, isMapping, type Env, type EnvReference, type InterpolationProblem } from "./interpolate.js";
import { configErrorMap, formatIssues, formatPath } from "./problems.js";
import { configSchema, type Config } from "./schema.js";

export type { Config } from "./schema.js";
export type { Env } from "./interpolate.js";
export type { ColumnSource, ReverseEdge, TableMapping } from "./tableMapping.js";
export { CONFLICT_RESOLUTIONS, type ConflictResolution } from "./schema.js";
export { parseListenAddress, isLoopbackHost, type ListenAddress } from "./listenAddress.js";

/** Reads and validates `file`; an unreadable file is a ConfigError naming it. */
export function loadConfig(file: string, env: Env): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "file not found" : `cannot read the file (${code ?? (error as Error).message})`;
    throw new ConfigError(file, [`(file): ${reason}`]);
  }
  return parseConfig(text, file, env);
}

/** Validates YAML `text`; `file` only names it in the error. */
export function parseConfig(text: string, file: string, env: Env): Config {
  const tree = parseYaml(text, file);
  if (!isMapping(tree)) {
    const found = tree === null || tree === undefined ? "an empty file" : Array.isArray(tree) ? "a list" : "a single value";
    throw new ConfigError(file, [`(top level): expected a mapping with source, target and tables sections, got ${found}`]);
  }

  const envProblems: InterpolationProblem[] = [];
  const references: EnvReference[] = [];
  const interpolated = interpolateTree(withoutEmptyValues(tree), env, envProblems, [], references);
  const problems = envProblems.map((p) => `${formatPath(p.path)}: ${p.reason}`);
  // A key whose reference failed keeps its raw text; its schema complaint would only repeat that.
  const failedKeys = new Set(envProblems.map((p) => formatPath(p.path)));

  const result = configSchema.safeParse(interpolated, { error: configErrorMap, reportInput: true });
  if (!result.success) {
    // A value taken from the environment is never quoted (it may be a secret): the variable is named instead.
    const fromEnv = new Map(references.map((r) => [formatPath(r.path), r.sources]));
    for (const problem of formatIssues(result.error.issues)) {
      const key = problem.slice(0, problem.indexOf(": "));
      if (failedKeys.has(key)) continue;
      const sources = fromEnv.get(key);
      problems.push(sources ? `${problem} (from ${sources.map((s) => (s.startsWith("the default in") ? s : `environment variable ${s}`)).join(" and ")})` : problem);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(file, problems);
  // Hook modules are named relative to the config file, wherever pgferry is started from.
  for (const table of result.data.tables) {
    if (table.hook !== undefined) table.hook = resolve(dirname(file), table.hook);
    if (table.reverse && table.reverse.hook !== undefined) table.reverse.hook = resolve(dirname(file), table.reverse.hook);
  }
  return result.data;
}

function parseYaml(text: string, file: string): unknown {
  // uniqueKeys: a key given twice is an error, not "the last one wins".
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    // One slip in YAML makes the parser report every token after it; the first few say where.
    const shown = doc.errors.slice(0, 3);
    const more = doc.errors.length > shown.length ? [`(${doc.errors.length - shown.length} more YAML errors follow from the first)`] : [];
    throw new ConfigError(file, [...shown.map((e) => {
      const position = e.linePos === undefined ? "" : `line ${e.linePos[0].line}, column ${e.linePos[0].col}: `;
      // Only the first line of the message: the rest quotes the source text, which may hold a secret.
      const reason = (e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
      return `${position}${reason}`;
    }), ...more]);
  }
  try {
    return doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    // Unresolvable aliases and alias bombs surface only when converting.
    throw new ConfigError(file, [`(top level): ${(error as Error).message}`]);
  }
}

/**
 * Drops keys written with no value (`apply:` with every child commented out, `adminToken:`), so they
 * mean the same as leaving the key out.
 */
function withoutEmptyValues(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutEmptyValues);
  if (!isMapping(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (child !== null && child !== undefined) out[key] = withoutEmptyValues(child);
  }
  return out;
}
