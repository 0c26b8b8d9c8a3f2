/**
 * `pgferry verify --direction reverse` on config/reorg.example.yaml: after the forward pipeline copied
 * the old project, every old table holds what the inverse mapping makes of the new side (each reverse
 * edge compared only over the old rows its forward edge maps, on the columns the reverse writes), and
 * rows changed directly on the new side are reported, exactly those, with exit 1. The command runs
 * in-process, through the CLI's own argument handling.
 */
import { resolve } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { loadConfig } from "../../src/config/index.js";
import type { DirectedReport } from "../../src/cli/commands/verify.js";
import { seedOldProject, SOURCE_DDL, TARGET_DDL } from "../../tools/demo/oldProject.js";
import { streaming } from "../harness/pipelineRunner.js";
import { useTestPair } from "../harness/testPair.js";

const CONFIG_FILE = resolve(import.meta.dirname, "../../config/reorg.example.yaml");

const pair = useTestPair("verifyrev", async (db) => {
  await db.source.query(SOURCE_DDL);
  await db.target.query(TARGET_DDL);
  await seedOldProject(db.source, 1);
});

const env = () => ({ SOURCE_URL: pair.db.sourceUrl, TARGET_URL: pair.db.targetUrl, PGFERRY_SLOT: `pgferry_${pair.db.name}` });

async function verify(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (into: string[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        into.push(chunk.toString("utf8"));
        callback();
      },
    });
  const code = await main(["verify", "--config", CONFIG_FILE, ...args], { stdout: sink(out), stderr: sink(err), env: env() });
  return { code, stdout: out.join(""), stderr: err.join("") };
}

async function count(sql: string): Promise<number> {
  const { rows } = await pair.db.source.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${sql}`);
  return Number(rows[0]?.n);
}

describe("pgferry verify --direction reverse", () => {
  it("is equal once the forward pipeline copied the old project, and names exactly the rows changed on the new side (exit 1)", async () => {
    const running = pair.start(loadConfig(CONFIG_FILE, env()));
    await streaming(running);
    await pair.stopAll();

    const both = await verify("--direction", "both");
    expect(both.stdout).not.toContain("DIFFERENT");
    expect(both.stdout).toContain("forward (old database -> new database):\n");
    expect(both.stdout).toContain("reverse (new database -> old database):\n");
    expect(both.stderr).toContain("note: the config has no reverse section");
    expect(both.code).toBe(0);

    const equal = await verify("--direction", "reverse", "--json");
    expect(equal.code).toBe(0);
    const reports = JSON.parse(equal.stdout) as DirectedReport[];
    expect(reports.every((r) => r.direction === "reverse")).toBe(true);
    const report = (source: string, target: string) => reports.find((r) => r.source === source && r.target === target);
    // Filtered forward: only the old rows the forward `where` maps are compared.
    expect(report("analytics.error_events", "public.error_logs")).toMatchObject({ status: "equal", rows: await count("error_logs WHERE level >= 'error'") });
    expect(await count("error_logs WHERE level < 'error'")).toBeGreaterThan(0);
    // The updates-only part of the split: the users it maps (not deleted), on the profile columns.
    expect(report("shared_services.profiles", "public.users")).toMatchObject({ status: "equal", rows: await count("users WHERE deleted_at IS NULL") });
    expect(report("auth_gateway.user_accounts", "public.users")).toMatchObject({ status: "equal", rows: await count("users") });
    // The merge splits back by its constants: each old source holds exactly its rows.
    expect(report("security_service.api_keys", "public.vendor_api_keys")).toMatchObject({ status: "equal", rows: await count("vendor_api_keys") });
    expect(report("security_service.api_keys", "public.service_tokens")).toMatchObject({ status: "equal", rows: await count("service_tokens") });
    // jsonb back into json (organizations.settings has a duplicate key) compares by value.
    expect(report("shared_services.organizations", "public.organizations")).toMatchObject({ status: "equal", rows: 20 });
    expect(report("shared_services.audit_log", "public.audit_log")).toMatchObject({ status: "skipped", reason: "forward-only: tables[3].reverse is false" });
    expect(report("vendors.vendors", "public.vendors")).toMatchObject({ status: "skipped" }); // a reverse hook
    expect(reports.filter((r) => r.status === "equal").length).toBeGreaterThan(20);

    // Changes made directly on the new side, which no reverse pipeline carried back.
    const { rows } = await pair.db.target.query<{ id: string }>("SELECT min(id)::text AS id FROM analytics.error_events");
    const event = rows[0]!.id;
    await pair.db.target.query(`
      UPDATE shared_services.organizations SET name = 'Renamed on the new side' WHERE id = 2;
      UPDATE shared_services.profiles SET bio = 'Edited on the new side' WHERE user_id = 3;
      UPDATE analytics.error_events SET message = 'reworded' WHERE id = ${event};`);

    const text = await verify("--direction", "reverse");
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("shared_services.organizations -> public.organizations: DIFFERENT: 0 missing on target, 0 extra on target, 1 different (of 20 source rows)\n    different: key (2)\n");
    expect(text.stdout).toMatch(/shared_services\.profiles -> public\.users: DIFFERENT: 0 missing on target, 0 extra on target, 1 different \(of \d+ source rows\)\n {4}different: key \(3\)\n/);
    expect(text.stdout).toMatch(new RegExp(`analytics\\.error_events -> public\\.error_logs: DIFFERENT: 0 missing on target, 0 extra on target, 1 different \\(of \\d+ source rows\\)\\n {4}different: key \\(${event}\\)\\n`));

    const json = await verify("--direction", "reverse", "--json");
    expect(json.code).toBe(1);
    const different = (JSON.parse(json.stdout) as DirectedReport[]).filter((r) => r.status === "different");
    expect(different.map((r) => [r.source, r.target, r.examples])).toEqual([
      ["shared_services.organizations", "public.organizations", [{ key: "(2)", problem: "different" }]],
      ["shared_services.profiles", "public.users", [{ key: "(3)", problem: "different" }]],
      ["analytics.error_events", "public.error_logs", [{ key: `(${event})`, problem: "different" }]],
    ]);
    expect(different.every((r) => r.direction === "reverse")).toBe(true);

    // One table, and both directions: the forward sees the same rows from its side.
    const one = await verify("--direction", "both", "--table", "public.organizations", "--json");
    expect(one.code).toBe(1);
    expect((JSON.parse(one.stdout) as DirectedReport[]).map((r) => [r.direction, r.source, r.target, r.status])).toEqual([
      ["forward", "public.organizations", "shared_services.organizations", "different"],
      ["reverse", "shared_services.organizations", "public.organizations", "different"],
    ]);
  });
});
