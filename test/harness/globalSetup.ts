/**
 * Starts one source (wal_level=logical) and one target server for the whole test run, each with a
 * template database that has pgvector installed. Test files clone fresh databases from the template
 * (see databases.ts), so files stay isolated and the suite stays fast.
 */
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startTestServers, type TestServers } from "./backend.js";
import { ensureBuilt } from "./build.js";

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

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Tests that run the CLI as a child process need dist/ to match src/ (the demo test builds dist-tools/ itself).
  ensureBuilt();
  servers = await startTestServers();
  const sourceUrl = servers.source.url("postgres");
  const targetUrl = servers.target.url("postgres");
  await Promise.all([prepareTemplate(sourceUrl), prepareTemplate(targetUrl)]);
  project.provide("pgServers", { backend: servers.backend, sourceUrl, targetUrl, template: TEMPLATE_DB });
  return async () => {
    if (process.env.PGFERRY_KEEP_FAILED === "1") {
      // A failed file's databases were kept (databases.ts); the servers must outlive the run to show them.
      console.log(`PGFERRY_KEEP_FAILED=1: the test servers keep running (source ${sourceUrl}, target ${targetUrl}); stop their postgres processes when done`);
      return;
    }
    await Promise.all([servers?.source.destroy(), servers?.target.destroy()]);
  };
}
