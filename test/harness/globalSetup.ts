/**
 * Starts one source (wal_level=logical) and one target server for the whole test run, each with a
 * template database that has pgvector installed. Test files clone fresh databases from the template
 * (see databases.ts), so files stay isolated and the suite stays fast.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startTestServers, type TestServers } from "./backend.js";

export const TEMPLATE_DB = "pgferry_template";

declare module "vitest" {
  export interface ProvidedContext {
    pgServers: { backend: string; sourceUrl: string; targetUrl: string; template: string };
  }
}

async function prepareTemplate(adminUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  const template = new pg.Client({ connectionString: adminUrl.replace(/\/postgres$/, `/${TEMPLATE_DB}`) });
  await template.connect();
  try {
    await template.query("CREATE EXTENSION vector");
  } finally {
    await template.end();
  }
}

let servers: TestServers | undefined;

const ROOT = resolve(import.meta.dirname, "../..");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Tests that run the CLI as a child process need dist/ to match src/: rebuild when it is stale. */
function ensureBuilt(): void {
  const bin = join(ROOT, "dist/cli/bin.js");
  if (existsSync(bin) && statSync(bin).mtimeMs >= newestMtime(join(ROOT, "src"))) return;
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")], { stdio: "inherit" });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  ensureBuilt();
  servers = await startTestServers();
  const sourceUrl = servers.source.url("postgres");
  const targetUrl = servers.target.url("postgres");
  await Promise.all([prepareTemplate(sourceUrl), prepareTemplate(targetUrl)]);
  project.provide("pgServers", { backend: servers.backend, sourceUrl, targetUrl, template: TEMPLATE_DB });
  return async () => {
    await Promise.all([servers?.source.destroy(), servers?.target.destroy()]);
  };
}
