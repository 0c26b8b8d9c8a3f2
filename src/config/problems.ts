/**
 * Turns zod issues into the operator-facing problems of a ConfigError: `<key path>: <reason>`.
 * Reasons describe the expected shape and the type that was found, never a string value: any
 * string may be a connection URL or token.
 */
import type { z } from "zod";
import { describeType } from "./byteSize.js";
import type { KeyPath } from "./interpolate.js";

type RawIssue = z.core.$ZodRawIssue;

const EXPECTED: Readonly<Record<string, string>> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  object: "a mapping",
  array: "a list",
};

/** `["tables", 3, "to"]` → `tables[3].to`; the empty path is the whole file. */
export function formatPath(path: KeyPath): string {
  let out = "";
  for (const part of path) out += typeof part === "number" ? `[${part}]` : out === "" ? part : `.${part}`;
  return out === "" ? "(top level)" : out;
}

/**
 * Per-parse error map: the wording for every issue a schema did not word itself. For unknown keys it
 * returns one line per key (split again in formatIssues), since only here is the object's schema at
 * hand to suggest the key that was meant.
 */
export function configErrorMap(issue: RawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type":
    {
      if (issue.input === undefined) return "required";
      // z.int() reports a non-number as expecting "number"; say what the key really needs.
      const expected = isIntegerSchema(issue.inst) ? "int" : issue.expected;
      return `expected ${EXPECTED[expected] ?? expected}, got ${describeType(issue.input)}`;
    }
    case "invalid_value":
      return `expected one of ${issue.values.map(String).join(", ")}`;
    case "too_small":
      if (issue.origin === "string") return `must be at least ${String(issue.minimum)} characters`;
      if (issue.origin === "array") return `must have at least ${String(issue.minimum)} entries`;
      return `must be at least ${String(issue.minimum)}`;
    case "too_big":
      if (issue.origin === "string") return `must be at most ${String(issue.maximum)} characters`;
      return `must be at most ${String(issue.maximum)}`;
    case "unrecognized_keys": {
      const known = knownKeys(issue.inst);
      return issue.keys.map((key) => unknownKeyReason(key, known)).join("\n");
    }
    default:
      return undefined;
  }
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const problems: string[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      const reasons = issue.message.split("\n");
      issue.keys.forEach((key, i) => problems.push(`${formatPath([...issue.path, key] as KeyPath)}: ${reasons[i] ?? "unknown key"}`));
    } else {
      problems.push(`${formatPath(issue.path as KeyPath)}: ${issue.message}`);
    }
  }
  return problems;
}

function isIntegerSchema(inst: unknown): boolean {
  const format = (inst as { def?: { format?: unknown } } | undefined)?.def?.format;
  return typeof format === "string" && format.endsWith("int");
}

function knownKeys(inst: unknown): string[] {
  const shape = (inst as { def?: { shape?: Record<string, unknown> } } | undefined)?.def?.shape;
  return shape === undefined ? [] : Object.keys(shape);
}

export function unknownKeyReason(key: string, known: readonly string[]): string {
  const suggestion = closestKey(key, known);
  if (suggestion !== undefined) return `unknown key (did you mean ${suggestion}?)`;
  return known.length > 0 ? `unknown key (expected one of ${known.join(", ")})` : "unknown key";
}

/** The known key a typo most likely meant: case-insensitive edit distance of at most a third. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(key.length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase(), limit);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Edit distance counting a swap of two neighbours as one edit (`form` → `from`), giving up
 * (returning limit + 1) once it must exceed `limit`.
 */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let beforePrevious: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, beforePrevious[j - 2]! + 1);
      current.push(value);
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin > limit) return limit + 1;
    beforePrevious = previous;
    previous = current;
  }
  return previous[b.length]!;
}
