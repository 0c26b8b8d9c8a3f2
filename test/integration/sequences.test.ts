/**
 * `pgferry sequences sync` on config/reorg.example.yaml (src/cutover/sequences.ts): the forward
 * pipeline copies the old project's keys but not its sequences, so the new project's first insert
 * without a key collides (pgstream#1203); after the sync it does not. The legacy_id sequence of the
 * merged api_keys is named in `sequences.extra` (a non-key column: the plan does not find it). The
 * command runs in-process, through the CLI's own argument handling. The tests run in order: each
 * starts from the sequences the previous one left.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Writable } from "node:stream";
import type pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { loadConfig } from "../../src/config/index.js";
import { sequenceSettings } from "../../src/config/schema.js";
import { sequenceGaps, startSequenceSync } from "../../src/cutover/sequences.js";
import { seedOldProject, SOURCE_DDL, TARGET_DDL } from "../../tools/demo/oldProject.js";
import { capturingLogger, streaming } from "../harness/pipelineRunner.js";
import { writeConfigFile } from "../harness/processRunner.js";
import { useTestPair } from "../harness/testPair.js";
import { waitFor } from "../harness/waitFor.js";

const CONFIG_FILE = resolve(import.meta.dirname, "../../config/reorg.example.yaml");
const INTEGER_HALF = 1_073_741_824; // keyRanges.ts: where the new side's integer keys start while both sides write

const pair = useTestPair("sequences", async (db) => {
  await db.source.query(SOURCE_DDL);
  await db.target.query(TARGET_DDL);
  await seedOldProject(db.source, 1);
});

const env = (user?: string) => {
  const as = (url: string) => {
    if (!user) return url;
    const u = new URL(url);
    u.username = user;
    u.password = "";
    return u.toString();
  };
  return { SOURCE_URL: as(pair.db.sourceUrl), TARGET_URL: as(pair.db.targetUrl), PGFERRY_SLOT: `pgferry_${pair.db.name}` };
};

/** The example with absolute hook paths (the file lives elsewhere) and the legacy id's sources named in sequences.extra. */
let configFile: string;

async function cli(args: string[], user?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (into: string[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        into.push(chunk.toString("utf8"));
        callback();
      },
    });
  const code = await main([...args, "--config", configFile], { stdout: sink(out), stderr: sink(err), env: env(user) });
  return { code, stdout: out.join(""), stderr: err.join("") };
}

/** What nextval() would return, read without calling it. */
async function next(pool: pg.Pool, sequence: string): Promise<number> {
  const { rows } = await pool.query<{ next: string }>(`SELECT (CASE WHEN is_called THEN last_value + 1 ELSE last_value END)::text AS next FROM ${sequence}`);
  return Number(rows[0]!.next);
}

// The new project's first inserts: each draws its key (or legacy id) from a sequence.
const INSERT_ORGANIZATION = "INSERT INTO shared_services.organizations (name, slug, plan, created_at) VALUES ('New org', $1, 'free', now()) RETURNING id";
const INSERT_MESSAGE = "INSERT INTO ai_chat.messages (conversation_id, role, content, created_at) VALUES (1, 'user', 'hello', now()) RETURNING id";
const INSERT_API_KEY =
  "INSERT INTO security_service.api_keys (source, owner_type, owner_id, name, key_hash, status, created_at) VALUES ('api_keys', 'user', '1', 'new key', $1, 'active', now()) RETURNING legacy_id";

const NEW_SEQUENCES = ["ai_chat.messages_id_seq", "security_service.api_keys_legacy_id_seq", "shared_services.organizations_id_seq"];

// Every failed insert above draws one value: the sequences stand at 2 when sync first runs.
const FORWARD_LINES = [
  "target ai_chat.messages_id_seq (ai_chat.messages.id): 2 → 1601 (source public.messages_id_seq at 600, column max 600, gap 1000)",
  "target security_service.api_keys_legacy_id_seq: 2 → 1151 (source public.api_keys_id_seq at 150, source public.vendor_api_keys_id_seq at 100, source public.service_tokens_id_seq at 30, gap 1000)",
  "target shared_services.organizations_id_seq (shared_services.organizations.id): 2 → 1021 (source public.organizations_id_seq at 20, column max 20, gap 1000)",
];

beforeAll(async () => {
  const configDir = resolve(import.meta.dirname, "../../config");
  const text = readFileSync(CONFIG_FILE, "utf8").replaceAll("hook: hooks/", `hook: ${configDir}/hooks/`);
  configFile = await writeConfigFile(`${text}
sequences:
  extra:
    - { target: security_service.api_keys_legacy_id_seq, source: public.api_keys_id_seq }
    - { target: security_service.api_keys_legacy_id_seq, source: public.vendor_api_keys_id_seq }
    - { target: security_service.api_keys_legacy_id_seq, source: public.service_tokens_id_seq }
`);
});

describe("pgferry sequences sync", () => {
  it("before a sync, the new project's first insert without a key collides; --dry-run prints what sync will do and changes nothing", async () => {
    // The forward pipeline copies the old project, then is stopped: what a switch starts from.
    const running = pair.start(loadConfig(configFile, env()));
    await streaming(running);
    await pair.stopAll();

    const { target } = pair.db;
    await expect(target.query(INSERT_ORGANIZATION, ["new-org-1"])).rejects.toMatchObject({ code: "23505", constraint: "organizations_pkey" });
    await expect(target.query(INSERT_MESSAGE)).rejects.toMatchObject({ code: "23505", constraint: "messages_pkey" });
    await expect(target.query(INSERT_API_KEY, ["k1"])).rejects.toMatchObject({ code: "23505", constraint: "api_keys_source_legacy_id_key" });

    const dry = await cli(["sequences", "sync", "--dry-run"]);
    expect(dry).toMatchObject({ code: 0, stderr: "dry run: no sequence was changed\n" });
    expect(dry.stdout.trimEnd().split("\n")).toEqual(FORWARD_LINES);
    for (const sequence of NEW_SEQUENCES) expect(await next(target, sequence)).toBe(2);

    const json = await cli(["sequences", "sync", "--dry-run", "--json"]);
    expect(JSON.parse(json.stdout)).toContainEqual({
      side: "target", sequence: "shared_services.organizations_id_seq", column: "shared_services.organizations.id", from: "2", to: "1021",
      reason: "source public.organizations_id_seq at 20, column max 20, gap 1000",
    });
  });

  it("refuses, naming the GRANT, for a role without UPDATE on the sequences it would move (and changes none)", async () => {
    const role = `pgferry_seq_${randomBytes(3).toString("hex")}`;
    const schemas = "shared_services, auth_gateway, security_service, vendors, ai_chat, billing, marketplace, analytics";
    for (const [pool, granted] of [[pair.db.source, "public"], [pair.db.target, schemas]] as const) {
      await pool.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF; END $$`);
      await pool.query(`GRANT USAGE ON SCHEMA ${granted} TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA ${granted} TO ${role}; GRANT SELECT ON ALL SEQUENCES IN SCHEMA ${granted} TO ${role}`);
    }
    const dry = await cli(["sequences", "sync", "--dry-run"], role);
    expect(dry.stdout.trimEnd().split("\n")).toEqual(FORWARD_LINES); // reading needs SELECT only

    const refused = await cli(["sequences", "sync"], role);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toMatch(/^pgferry sequences: privilege error on the target database postgres:\/\/[^\n]+: cannot sync sequences:\n/);
    for (const sequence of NEW_SEQUENCES) {
      expect(refused.stderr).toContain(`  - target: the role lacks UPDATE on sequence ${sequence} (GRANT UPDATE ON SEQUENCE ${sequence} TO ${role}), which setval needs`);
      expect(await next(pair.db.target, sequence)).toBe(2);
    }
    expect(refused.stderr).toContain(`hint: GRANT UPDATE ON SEQUENCE ai_chat.messages_id_seq TO ${role}; GRANT UPDATE ON SEQUENCE security_service.api_keys_legacy_id_seq TO ${role};`);
  });

  it("moves each sequence past the old side's keys and the column's max plus the gap; the inserts then succeed, and a second sync moves nothing", async () => {
    const { target } = pair.db;
    const sync = await cli(["sequences", "sync"]);
    expect(sync).toMatchObject({ code: 0, stderr: "" });
    expect(sync.stdout.trimEnd().split("\n")).toEqual(FORWARD_LINES); // the lines --dry-run printed

    expect((await target.query<{ id: number }>(INSERT_ORGANIZATION, ["new-org-2"])).rows[0]!.id).toBe(1021);
    expect((await target.query<{ id: string }>(INSERT_MESSAGE)).rows[0]!.id).toBe("1601");
    expect((await target.query<{ legacy_id: string }>(INSERT_API_KEY, ["k2"])).rows[0]!.legacy_id).toBe("1151");

    // Never backwards: every sequence is at or past what it needs.
    expect(await cli(["sequences", "sync"])).toEqual({ code: 0, stdout: "all sequences ahead (gap 1000)\n", stderr: "" });
    expect((await cli(["sequences", "sync", "--json"])).stdout).toBe("[]\n");
    expect(await next(target, "shared_services.organizations_id_seq")).toBe(1022);
  });

  it("sequenceGaps measures each sequence against what it needs; startSequenceSync keeps it ahead while the old side takes keys", async () => {
    const { source, target } = pair.db;
    const config = loadConfig(configFile, env());
    const gaps = async () => new Map((await sequenceGaps({ config, old: source, new: target })).map((g) => [g.sequence, g]));
    // Rows the new side inserted from the sequence itself: it needs only to be past them.
    expect((await gaps()).get("shared_services.organizations_id_seq")).toEqual({
      side: "target", sequence: "shared_services.organizations_id_seq", column: "shared_services.organizations.id", next: 1022n, needed: 1022n, gap: 0n,
    });
    expect((await gaps()).get("security_service.api_keys_legacy_id_seq")).toMatchObject({ column: null, next: 1152n, needed: 151n, gap: 1001n });

    // The old project keeps inserting until traffic moves: the new side falls behind (negative).
    await source.query("SELECT setval('public.organizations_id_seq', 5000)");
    expect((await gaps()).get("shared_services.organizations_id_seq")).toMatchObject({ needed: 5001n, gap: -3979n });

    const { log, logs } = capturingLogger();
    const stop = startSequenceSync({ config: { ...config, sequences: { ...sequenceSettings(config), syncEverySeconds: 1 } }, old: source, new: target, log });
    try {
      await waitFor(() => next(target, "shared_services.organizations_id_seq"), { description: "the periodic sync to move organizations_id_seq", until: (n) => n === 6001 });
    } finally {
      await stop();
      await stop(); // safe twice
    }
    expect(logs.map((line) => JSON.parse(line) as Record<string, unknown>)).toContainEqual(expect.objectContaining({
      level: 30, msg: "sequence moved ahead of the keys the other side used", sequence: "shared_services.organizations_id_seq", from: "1022", to: "6001",
    }));
    expect((await gaps()).get("shared_services.organizations_id_seq")).toMatchObject({ gap: 1000n });
    // syncEverySeconds 0 (the default): nothing runs.
    await startSequenceSync({ config, old: source, new: target, log })();
  });

  it("--direction reverse (a rollback) moves the old project's sequences past the new side's and past rows the reverse wrote with high keys", async () => {
    const { source } = pair.db;
    // A row the reverse pipeline carried back from the new side's range (docs/reverse.md, "Inserts on both sides").
    await source.query("INSERT INTO public.organizations (id, name, slug, created_at) VALUES ($1, 'Made on the new side', 'from-new', now())", [INTEGER_HALF + 76]);
    const high = INTEGER_HALF + 76;

    const sync = await cli(["sequences", "sync", "--direction", "reverse"]);
    expect(sync.code).toBe(0);
    const lines = sync.stdout.trimEnd().split("\n");
    expect(lines).toContain(
      `source public.organizations_id_seq (public.organizations.id): 5001 → ${high + 1 + 1000} (target shared_services.organizations_id_seq at 6000, column max ${high}, gap 1000)`,
    );
    expect(lines).toContain("source public.messages_id_seq (public.messages.id): 601 → 2602 (target ai_chat.messages_id_seq at 1601, column max 600, gap 1000)");
    expect(lines.every((line) => line.startsWith("source public."))).toBe(true);

    const { rows } = await source.query<{ id: number }>("INSERT INTO public.organizations (name, slug) VALUES ('Old again', 'old-again') RETURNING id");
    expect(rows[0]!.id).toBe(high + 1 + 1000);
    expect((await cli(["sequences", "sync", "--direction", "reverse"])).stdout).toBe("all sequences ahead (gap 1000)\n");
  });

  it("checks its arguments before reading anything (exit 2 with the usage line)", async () => {
    for (const [args, problem] of [
      [["sequences"], "missing subcommand: sequences sync"],
      [["sequences", "bump"], "unknown subcommand 'bump' (sequences has one: sync)"],
      [["sequences", "sync", "--direction", "both"], "--direction must be forward or reverse, not 'both'"],
    ] as const) {
      const result = await cli([...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`pgferry sequences: ${problem}\nusage: pgferry sequences sync [--config pgferry.yaml] [--direction forward|reverse] [--dry-run] [--json]\n`);
    }
  });
});
