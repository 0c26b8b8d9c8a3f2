/**
 * Compiled output for tests that run it as a child process, rebuilt when older than its sources:
 * dist/ (the product, tsconfig.build.json) for the CLI, dist-tools/ (tools/tsconfig.json) for the demo.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function build(output: string, sources: readonly string[], project: string): string {
  const file = join(ROOT, output);
  const newestSource = Math.max(...sources.map((dir) => newestMtime(join(ROOT, dir))));
  if (existsSync(file) && statSync(file).mtimeMs >= newestSource) return file;
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, project)], { stdio: "inherit" });
  return file;
}

/** dist/ matching src/ (tests that run the CLI as a child process); returns the CLI's path. */
export function ensureBuilt(): string {
  return build("dist/cli/bin.js", ["src"], "tsconfig.build.json");
}

/** dist-tools/ matching tools/ and src/ (the demo test); returns the demo's path. */
export function ensureToolsBuilt(): string {
  return build("dist-tools/tools/demo/main.js", ["src", "tools"], "tools/tsconfig.json");
}
