/**
 * The built-in status page in headless Chromium (Debian's package, installed by
 * scripts/install-test-tools.sh, driven by playwright-core): it shows the pipeline's tables and
 * state; the Resync button sends the POST with the token typed in (remembered for the tab), the
 * injected resync engine receives the table, and the page shows the answer. Its readiness items,
 * charts (inline SVG under the page's Content-Security-Policy) and streamed counts refresh too.
 */
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ResyncController } from "../../src/control/resyncController.js";
import { createFixture, mappings, seed } from "../fixtures/appSchema.js";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { testConfig } from "../harness/pipelineRunner.js";
import { waitFor } from "../harness/waitFor.js";
import { ADMIN_TOKEN, request, startControlled, type ControlledPipeline } from "./controlSupport.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

let db: TestDatabases;
let running: ControlledPipeline | undefined;
let browser: BrowserContext | undefined;
let profile: string | undefined;
const resyncCalls: string[] = [];

const resyncs: ResyncController = {
  start(table) {
    resyncCalls.push(table);
    return { id: `resync-${resyncCalls.length}` };
  },
  get: () => undefined,
};

beforeAll(async () => {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`${CHROMIUM} is not installed: run \`bash scripts/install-test-tools.sh\` (as root; \`npm test\` runs it) to install Debian's chromium package`);
  }
  db = await createTestDatabases("status_page");
  await createFixture(db.source, db.target);
  await seed(db.source, 40);
  await db.source.query("ANALYZE");
  profile = await mkdtemp(join(tmpdir(), "pgferry-chromium-"));
  browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});
afterAll(async () => {
  await browser?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await running?.stop();
  await db?.drop();
});

describe("status page", () => {
  it("shows the tables and their state, and the Resync button starts a resync with the typed token", async () => {
    const config = testConfig({ sourceUrl: db.sourceUrl, targetUrl: db.targetUrl, tables: mappings(), extra: `control:\n  adminToken: ${ADMIN_TOKEN}\n` });
    running = await startControlled(config, { resyncs });
    const { base } = running;
    await waitFor(() => request(`${base}/readyz`), { description: "/readyz 200", until: (r) => r.status === 200 });

    const page = await browser!.newPage();
    // Script errors and CSP refusals would show here; the deliberate 401 below is the only expected one.
    const consoleErrors: string[] = [];
    page.on("pageerror", (error) => consoleErrors.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error" && !message.text().includes("status of 401")) consoleErrors.push(message.text());
    });
    await page.goto(`${base}/`);
    expect(await page.title()).toMatch(/^pgferry · pgferry_t_status_page_/);
    const rows = page.locator("#tables tr");
    await expect.poll(() => rows.count()).toBe(4);
    const cells = await Promise.all([0, 1, 2, 3].map(async (i) => (await rows.nth(i).locator("td").allTextContents()).slice(0, 5)));
    expect(cells).toEqual([
      ["public.accounts", "ready", "40", "40", "100%"],
      ["public.audit", "ready", "40", "40", "100%"],
      ["public.events", "ready", "40", "40", "100%"],
      ["public.items", "ready", "40", "40", "100%"],
    ]);
    expect(await page.locator("#phase").textContent()).toBe("streaming");
    expect(await page.locator("#ready").textContent()).toBe("yes");

    // A wrong token: the server refuses, the page shows it, no resync starts.
    await page.locator("#token").fill("wrong-token-0000000000");
    await page.locator('button.resync[data-table="public.items"]').click();
    await expect.poll(() => page.locator("#resync-result").textContent()).toMatch(/^401 Unauthorized\n/);
    expect(resyncCalls).toEqual([]);

    await page.locator("#token").fill(ADMIN_TOKEN);
    await page.locator('button.resync[data-table="public.accounts"]').click();
    await expect.poll(() => page.locator("#resync-result").textContent()).toMatch(/^202 Accepted\n/);
    expect(JSON.parse((await page.locator("#resync-result").textContent())!.replace(/^.*\n/, ""))).toMatchObject({ id: "resync-1", table: "public.accounts" });
    expect(resyncCalls).toEqual(["public.accounts"]);

    // The page refreshes itself from /v1/status: a source write moves the checkpoint it shows.
    const checkpoint = await page.locator("#checkpoint").textContent();
    await db.source.query("INSERT INTO accounts (id, email) VALUES (7, 'page@example.com')");
    await expect.poll(() => page.locator("#checkpoint").textContent(), { timeout: 15_000 }).not.toBe(checkpoint);
    await expect.poll(() => page.locator("#tables tr").count()).toBe(4);

    // The readiness items the daemon judges, the last hour's charts and the changes streamed per
    // source table, refreshed with the rest (the insert above is one).
    const checks = page.locator("#checks tr");
    expect(await checks.locator("td.name").allTextContents()).toEqual(["lag", "slot", "tables", "resync", "conflicts"]);
    await expect.poll(() => checks.locator("td.check").allTextContents(), { timeout: 15_000 }).toEqual(["ready", "ready", "ready", "ready", "ready"]);
    await expect.poll(() => page.locator('#streamed tr:has(td.name:text-is("public.accounts")) td.num').allTextContents(), { timeout: 15_000 }).toEqual(["1", "0", "0", "0", "0", "1"]);
    expect(await page.locator("#streamed td.name").allTextContents()).toEqual(["public.accounts", "public.audit", "public.events", "public.items"]);
    for (const id of ["chart-lag", "chart-applied"]) {
      expect(await page.locator(`#${id}-line`).getAttribute("points"), id).toMatch(/^\d+(\.\d)?,\d+(\.\d)?( \d+(\.\d)?,\d+(\.\d)?)*$/);
      expect(await page.locator(`#${id}`).boundingBox(), id).toMatchObject({ width: expect.any(Number) as number, height: expect.any(Number) as number });
    }
    expect(await page.locator("#chart-applied-latest").textContent()).toMatch(/^\d+\.\d\/s$/);

    // The token is kept for the tab: after a reload it is still there and a resync works at once.
    await page.reload();
    expect(await page.locator("#token").inputValue()).toBe(ADMIN_TOKEN);
    await page.locator('button.resync[data-table="public.events"]').click();
    await expect.poll(() => page.locator("#resync-result").textContent()).toMatch(/^202 Accepted\n/);
    expect(resyncCalls).toEqual(["public.accounts", "public.events"]);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
