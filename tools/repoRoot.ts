/**
 * The repository root (the directory holding package.json), found from this module's own place:
 * tools/ when imported from source (the tests), dist-tools/tools/ when compiled (`npm run demo`,
 * `npm run bench`). The tools read config/ and package.json there and write bench/results/ under it.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json in ${start} or above`);
  }
}

export const REPO_ROOT = findRoot(import.meta.dirname);
