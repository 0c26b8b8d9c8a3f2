/**
 * Environment references in config values: `${VAR}`, `${VAR:-default}` (default when VAR is unset
 * or empty, as in the shell) and `$${` for a literal `${`. Applied to the parsed YAML tree rather
 * than the raw text, so a problem names its key and a value can never break the YAML syntax.
 */

export type Env = NodeJS.ProcessEnv | Record<string, string | undefined>;
export type KeyPath = readonly (string | number)[];

export interface InterpolationProblem {
  path: KeyPath;
  reason: string;
}

/** A value that came from the environment: the variables it references (so a problem can name them). */
export interface EnvReference {
  path: KeyPath;
  /** `W`, or `the default in ${C:-…}, C being unset or empty` when the default was used. */
  sources: string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Returns a copy of `tree` with every string value interpolated. Problems are appended to
 * `problems`; the value of a key with a problem is left as written.
 */
export function interpolateTree(tree: unknown, env: Env, problems: InterpolationProblem[], path: KeyPath = [], references?: EnvReference[]): unknown {
  if (typeof tree === "string") {
    const result = interpolateString(tree, env);
    for (const reason of result.problems) problems.push({ path, reason });
    if (result.sources.length > 0) references?.push({ path, sources: result.sources });
    return result.problems.length > 0 ? tree : result.value;
  }
  if (Array.isArray(tree)) {
    return tree.map((item: unknown, index) => interpolateTree(item, env, problems, [...path, index], references));
  }
  if (isMapping(tree)) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(tree)) out[key] = interpolateTree(value, env, problems, [...path, key], references);
    return out;
  }
  return tree;
}

/**
 * Interpolates one string. Reasons never quote the value: it may be a connection string whose
 * password is written inline.
 */
export function interpolateString(text: string, env: Env): { value: string; problems: string[]; sources: string[] } {
  if (!text.includes("$")) return { value: text, problems: [], sources: [] };
  const problems: string[] = [];
  const sources: string[] = [];
  let value = "";
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf("$", i);
    if (dollar < 0) {
      value += text.slice(i);
      break;
    }
    value += text.slice(i, dollar);
    if (text.startsWith("$${", dollar)) {
      value += "${";
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== "{") {
      value += "$"; // a lone `$` is literal (`$5`, `pa$$word`)
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf("}", dollar + 2);
    if (close < 0) {
      problems.push('unterminated "${" (write "$${" for a literal "${")');
      break;
    }
    const body = text.slice(dollar + 2, close);
    const separator = body.indexOf(":-");
    const name = separator < 0 ? body : body.slice(0, separator);
    if (!NAME.test(name)) {
      problems.push('invalid environment reference: expected ${NAME} or ${NAME:-default} (write "$${" for a literal "${")');
    } else {
      const fromEnv = env[name];
      if (separator >= 0 && (fromEnv === undefined || fromEnv === "")) {
        value += body.slice(separator + 2);
        sources.push(`the default in \${${name}:-…}, ${name} being unset or empty`);
      } else if (fromEnv === undefined) {
        problems.push(`environment variable ${name} is not set`);
      } else {
        value += fromEnv;
        sources.push(name);
      }
    }
    i = close + 1;
  }
  return { value, problems, sources };
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
