/**
 * The inverse of config/reorg.example.yaml: the file as a user loads it, compiled back from the
 * domain schemas into the old flat project (compileReversePlan, as `pgferry plan --reverse` and the
 * reverse pipeline's preflight do) against the example's live catalogs, without a problem; and what
 * the inverse decides for each kind of entry (docs/reverse.md).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/index.js";
import { compileReversePlan } from "../../src/plan/loadPlan.js";
import { checkKeyRanges, raiseNewSideSequences } from "../../src/pipeline/keyRanges.js";
import { createLogger } from "../../src/log/logger.js";
import { describeOrigin, type EdgePlan, type TablePlan } from "../../src/plan/plan.js";
import { formatReversePlan } from "../../src/plan/planReport.js";
import { loadHooks } from "../../src/transform/codeHook.js";
import { SOURCE_DDL, TARGET_DDL } from "../../tools/demo/oldProject.js";
import type { TestDatabases } from "../harness/databases.js";
import { runCli, writeConfigFile } from "../harness/processRunner.js";
import { useTestPair } from "../harness/testPair.js";

const CONFIG_FILE = resolve(import.meta.dirname, "../../config/reorg.example.yaml");

let db: TestDatabases;
useTestPair("reorgrev", async (created) => {
  db = created;
  await db.source.query(SOURCE_DDL);
  await db.target.query(TARGET_DDL);
});

describe("the reverse plan of config/reorg.example.yaml", () => {
  it("compiles against the old and the new project's catalogs, carrying back every entry but the audit log", async () => {
    const cfg = loadConfig(CONFIG_FILE, { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
    const reverse = await compileReversePlan({ mappings: cfg.tables }, { old: db.source, new: db.target });
    expect(reverse.problems).toEqual([]);
    await loadHooks(reverse.plans); // both reverse hooks load and export a function

    const edges = reverse.plans.flatMap((p) => p.edges);
    expect(edges.map((e) => e.index).sort((a, b) => a - b)).toEqual(cfg.tables.flatMap((t, i) => (t.reverse === false ? [] : [i])));
    const plan = (id: string): TablePlan => reverse.plans.find((p) => p.id === id)!;
    const edge = (from: string, to: string): EdgePlan => plan(from).edges.find((e) => e.table.id === to)!;
    const origin = (e: EdgePlan, column: string) => describeOrigin(e.origins[e.table.columns.findIndex((c) => c.name === column)]!);

    // The merge splits back by its constants, each source under the old key kept in legacy_id.
    const keys = plan("security_service.api_keys").edges;
    expect(keys.map((e) => [e.table.id, e.filter?.expr])).toEqual([
      ["public.api_keys", `"source" = 'api_keys' AND "owner_type" = 'user'`],
      ["public.vendor_api_keys", `"source" = 'vendor_api_keys' AND "owner_type" = 'vendor'`],
      ["public.vendor_api_keys_v2", `"source" = 'vendor_api_keys_v2' AND "owner_type" = 'vendor'`],
      ["public.service_tokens", `"source" = 'service_tokens' AND "owner_type" = 'service'`],
    ]);
    expect(keys.map((e) => origin(e, "id"))).toEqual(["legacy_id::int (sql)", "legacy_id::int (sql)", "id", "legacy_id::int (sql)"]);
    expect(keys.every((e) => e.table.keyIndexes.length === 1 && e.table.columns[e.table.keyIndexes[0]!]!.name === "id")).toBe(true);
    expect(edge("security_service.api_keys", "public.api_keys").hook).toMatch(/config\/hooks\/keepKeyPrefix\.mjs$/);
    // The users split joins back on the key; the profile part only updates (it has no email).
    expect(edge("auth_gateway.user_accounts", "public.users").table.updateOnly).toBeUndefined();
    expect(edge("shared_services.profiles", "public.users").table).toMatchObject({ updateOnly: true });
    expect(origin(edge("shared_services.profiles", "public.users"), "id")).toBe("user_id");
    expect(edge("shared_services.profiles", "public.users").filter).toBeNull();
    // Renames and the inverse of automatic conversions (text back into an enum); derived columns given back.
    expect(origin(edge("shared_services.organizations", "public.organizations"), "plan_tier")).toBe("plan");
    expect(origin(edge("billing.payments", "public.payments"), "amount")).toBe("amount_cents / 100.0 (sql)");
    expect(edge("security_service.memory_entries", "public.memory_entries").filter?.expr).toBe(`"customer_id" = '1'`);
    expect(edge("vendors.vendors", "public.vendors").hook).toMatch(/config\/hooks\/keepNormalizedWebsite\.mjs$/);

    expect(reverse.notes).toContain("tables[3] public.audit_log → shared_services.audit_log: forward-only (reverse: false)");
    expect(reverse.notes.filter((n) => n.includes("updates only"))).toEqual([
      "tables[5] public.users → shared_services.profiles: carried back as updates only: it does not write email (NOT NULL without a default in public.users), so a row new in shared_services.profiles is not inserted; a change updates the existing row, and deletes are not carried back",
    ]);
    expect(formatReversePlan(reverse)).toContain("  -> public.users  [tables[5].reverse; updates only]");
  });

  it("is printed by pgferry plan --reverse (exit 0), and --reverse --check runs the reverse start-up check", async () => {
    const env = { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl };
    const plain = runCli(["plan", "--reverse", "--config", CONFIG_FILE], env);
    expect((await plain.exited).code).toBe(0);
    const printed = plain.output.join("");
    expect(printed).toContain("  -> public.users  [tables[5].reverse; updates only]");
    expect(printed).toContain("tables[3] public.audit_log → shared_services.audit_log: forward-only (reverse: false)");
    expect(printed).toContain("note: the config has no reverse section; this is the plan one would run");

    // With the reverse section enabled; the forward pipeline never ran here, which the check reports.
    const configDir = resolve(import.meta.dirname, "../../config");
    const text = readFileSync(CONFIG_FILE, "utf8").replaceAll("hook: hooks/", `hook: ${configDir}/hooks/`);
    const file = await writeConfigFile(`${text}\nreverse:\n  slot: pgferry_${db.name}_rev\n  publication: pgferry_${db.name}_rev\n`);
    const check = runCli(["plan", "--reverse", "--check", "--config", file], { ...env, PGFERRY_SLOT: `pgferry_${db.name}` });
    expect((await check.exited).code).toBe(1);
    expect(check.output.join("")).toMatch(/^check: \d+ problem\(s\):\n {2}- reverse: /m);
  });
});

describe("key ranges while both sides insert (src/pipeline/keyRanges.ts)", () => {
  it("moves the new side's key sequences into their own range, and refuses an old sequence that has reached it", async () => {
    const cfg = loadConfig(CONFIG_FILE, { SOURCE_URL: db.sourceUrl, TARGET_URL: db.targetUrl });
    const { plans } = await compileReversePlan({ mappings: cfg.tables }, { old: db.source, new: db.target });
    const problems: string[] = [];
    await checkKeyRanges(db.source, plans, problems);
    expect(problems).toEqual([]);

    await raiseNewSideSequences(db.target, plans, createLogger({ level: "silent", format: "json" }));
    const next = async (sequence: string) => (await db.target.query<{ v: string }>(`SELECT last_value::text AS v FROM ${sequence}`)).rows[0]!.v;
    expect(await next("shared_services.organizations_id_seq")).toBe("1073741824");
    expect(await next("ai_chat.messages_id_seq")).toBe("4611686018427387904");
    expect(await next("security_service.api_keys_legacy_id_seq")).toBe("1073741824");

    // As a reverse `sequences sync` leaves it: setval(..., false), which pg_sequences does not show.
    await db.source.query("SELECT setval('public.organizations_id_seq', 1073741830, false)");
    try {
      await checkKeyRanges(db.source, plans, problems);
      expect(problems).toEqual([
        "reverse: the old project's sequence public.organizations_id_seq (public.organizations.id) is at 1073741830, inside the range the new project's keys take from 1073741824; " +
          "rows inserted on both sides could collide: renumber the old keys below it or give the new side's sequences another range by hand (docs/reverse.md)",
      ]);
    } finally {
      await db.source.query("SELECT setval('public.organizations_id_seq', 1, false)");
    }
  });
});
