import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, expect } from "vitest";
import { loadConfig, parseConfig, type Config } from "../../src/config/index.js";
import { CUTOVER_DEFAULTS, SEQUENCES_DEFAULTS, sequenceSettings } from "../../src/config/schema.js";
import { ConfigError } from "../../src/errors.js";

const ENV = {
  SOURCE_URL: "postgres://app:s3cret-source@old.db:5432/old",
  TARGET_URL: "postgresql://app:s3cret-target@new.db/new?sslmode=require",
};

const TABLES = `tables:
  - { from: public.users, to: auth_gateway.users }
`;

function minimal(extra = ""): string {
  return `source:
  url: \${SOURCE_URL}
target:
  url: \${TARGET_URL}
${extra}
${TABLES}`;
}

/** The problems of a config that must fail, checking they never leak a secret. */
function problemsOf(text: string, env: Record<string, string | undefined> = ENV): readonly string[] {
  try {
    parseConfig(text, "pgferry.yaml", env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    for (const secret of ["s3cret", "tok3n"]) expect(configError.message).not.toContain(secret);
    return configError.problems;
  }
  throw new Error("expected a ConfigError");
}

describe("parseConfig: valid files", () => {
  it("applies every default to a minimal file", () => {
    const config = parseConfig(minimal(), "pgferry.yaml", ENV);
    const expected: Config = {
      source: { url: ENV.SOURCE_URL, slot: "pgferry", publication: "pgferry" },
      target: { url: ENV.TARGET_URL, stateSchema: "_pgferry" },
      snapshot: { workers: 4, chunkRows: 250_000, chunkBytes: 32 * 1024 * 1024, format: "auto", deferIndexes: true, indexBuildMemory: 512 * 1024 * 1024 },
      apply: {
        batchMaxRows: 10_000,
        batchMaxBytes: 8 * 1024 * 1024,
        batchMaxMs: 100,
        queueMaxBytes: 8 * 1024 * 1024,
        format: "auto",
        synchronousCommit: "off",
        onError: "retry",
        retry: { maxAttempts: 10, initialDelayMs: 500, maxDelayMs: 30_000 },
      },
      control: { listen: "127.0.0.1:9187", readyMaxLagSeconds: 30 },
      resync: { chunkRows: 5000 },
      log: { level: "info", format: "auto" },
      tables: [{ from: "public.users", to: "auth_gateway.users", columns: {}, exclude: [], passthrough: true }],
    };
    expect(config).toEqual(expected);
  });

  it("parses byte sizes in SI and IEC units and plain numbers", () => {
    const sizes = (batch: string, queue: string) =>
      parseConfig(minimal(`apply:\n  batchMaxBytes: ${batch}\n  queueMaxBytes: ${queue}`), "f.yaml", ENV).apply;
    expect(sizes("512KiB", "1GiB")).toMatchObject({ batchMaxBytes: 524_288, queueMaxBytes: 1_073_741_824 });
    expect(sizes("10MB", "1048576")).toMatchObject({ batchMaxBytes: 10_000_000, queueMaxBytes: 1_048_576 });
    expect(sizes('"1.5 MiB"', "2kb")).toMatchObject({ batchMaxBytes: 1_572_864, queueMaxBytes: 2_000 });
  });

  it("reads snapshot.chunkBytes as a byte size next to chunkRows", () => {
    const snapshot = parseConfig(minimal("snapshot:\n  chunkRows: 100000\n  chunkBytes: 64MiB"), "f.yaml", ENV).snapshot;
    expect(snapshot).toMatchObject({ chunkRows: 100_000, chunkBytes: 64 * 1024 * 1024 });
    expect(problemsOf(minimal("snapshot:\n  chunkBytes: 0"))).toEqual(["snapshot.chunkBytes: must be at least 1 byte"]);
    expect(problemsOf(minimal("snapshot:\n  chunkByte: 1MiB"))).toEqual(["snapshot.chunkByte: unknown key (did you mean chunkBytes?)"]);
  });

  it("interpolates env references with defaults, literal $${ and integers", () => {
    const config = parseConfig(
      minimal(`source:
  url: \${SOURCE_URL}
  slot: \${SLOT:-ferry_a}
  publication: \${PUBLICATION:-ferry_pub}
snapshot:
  workers: \${WORKERS}
control:
  listen: 0.0.0.0:9187
  adminToken: "$\${NOT_A_VAR}-literal-tok"`).replace(/^source:\n {2}url: \$\{SOURCE_URL\}\n/, ""),
      "f.yaml",
      { ...ENV, PUBLICATION: "", WORKERS: "8" },
    );
    expect(config.source).toEqual({ url: ENV.SOURCE_URL, slot: "ferry_a", publication: "ferry_pub" });
    expect(config.snapshot.workers).toBe(8);
    expect(config.control.adminToken).toBe("${NOT_A_VAR}-literal-tok");
  });

  it("treats a section or key with no value as left out", () => {
    const config = parseConfig(minimal("apply:\nlog:\n  level:\ncontrol:\n  adminToken:"), "f.yaml", ENV);
    expect(config.apply.batchMaxRows).toBe(10_000);
    expect(config.log.level).toBe("info");
    expect(config.control.adminToken).toBeUndefined();
  });

  it("accepts loopback listen addresses without a token, and others with one", () => {
    for (const listen of ["localhost:9000", '"[::1]:9000"', "127.0.0.2:9187"]) {
      expect(parseConfig(minimal(`control:\n  listen: ${listen}`), "f.yaml", ENV).control.adminToken).toBeUndefined();
    }
    const config = parseConfig(minimal("control:\n  listen: 0.0.0.0:9187\n  adminToken: ${ADMIN_TOKEN}"), "f.yaml", {
      ...ENV,
      ADMIN_TOKEN: "0123456789abcdef",
    });
    expect(config.control).toEqual({ listen: "0.0.0.0:9187", adminToken: "0123456789abcdef", readyMaxLagSeconds: 30 });
  });

  it("allows one source feeding two targets and two sources feeding one target", () => {
    const config = parseConfig(
      minimal().replace(TABLES, `tables:
  - { from: public.keys, to: security_service.keys }
  - { from: public.keys, to: auth_gateway.keys }
  - { from: public.api_keys, to: security_service.keys }
`),
      "f.yaml",
      ENV,
    );
    expect(config.tables).toHaveLength(3);
  });

  it("parses config/pgferry.example.yaml to the defaults", () => {
    const file = new URL("../../config/pgferry.example.yaml", import.meta.url);
    const example = loadConfig(file.pathname, ENV);
    const defaults = parseConfig(minimal(), "f.yaml", ENV);
    // The optional sections it writes out, sequences and cutover, hold what a config without them gets.
    expect({ ...example, tables: defaults.tables }).toEqual({ ...defaults, sequences: SEQUENCES_DEFAULTS, cutover: CUTOVER_DEFAULTS });
    expect(example.tables.length).toBeGreaterThan(0);
  });

  it("parses config/pgferry.example.yaml with its commented reverse section turned on, to that section's defaults", () => {
    const file = new URL("../../config/pgferry.example.yaml", import.meta.url).pathname;
    const text = readFileSync(file, "utf8").replace(/^# reverse:\n((?:# {3}.*\n)+)/m, (_, body: string) => `reverse:\n${body.replace(/^# /gm, "")}`);
    expect(text).toMatch(/^reverse:\n(?: {2}.*\n)* {2}slot: pgferry_reverse\n/m);
    expect(parseConfig(text, file, ENV).reverse).toEqual(parseConfig(minimal("reverse: {}"), "f.yaml", ENV).reverse);
  });

  it("loadConfig reads a file", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgferry-config-"));
    try {
      const file = join(dir, "pgferry.yaml");
      writeFileSync(file, minimal());
      expect(loadConfig(file, ENV).source.url).toBe(ENV.SOURCE_URL);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("parseConfig: invalid files report each problem by key path", () => {
  it("missing required key", () => {
    expect(problemsOf(`source:\n  url: \${SOURCE_URL}\n${TABLES}`)).toEqual(["target.url: required"]);
    expect(problemsOf(minimal().replace(TABLES, ""))).toEqual(["tables: required"]);
  });

  it("wrong type", () => {
    expect(problemsOf(minimal("snapshot:\n  workers: many"))).toEqual(["snapshot.workers: expected an integer, got a string"]);
    expect(problemsOf(minimal("snapshot:\n  workers: 2.5"))).toEqual(["snapshot.workers: expected an integer, got 2.5"]);
    expect(problemsOf(minimal("apply: fast"))).toEqual(["apply: expected a mapping, got a string"]);
    expect(problemsOf(minimal("log:\n  level: [info]"))).toEqual(["log.level: expected one of fatal, error, warn, info, debug, trace, silent"]);
  });

  it("unknown key, with a did-you-mean for near misses", () => {
    expect(problemsOf(minimal("apply:\n  batchMaxRow: 5"))).toEqual(["apply.batchMaxRow: unknown key (did you mean batchMaxRows?)"]);
    expect(problemsOf(minimal("sources:\n  slot: x"))).toEqual(["sources: unknown key (did you mean source?)"]);
    expect(problemsOf(minimal("apply:\n  retry:\n    maxattempts: 3"))).toEqual(["apply.retry.maxattempts: unknown key (did you mean maxAttempts?)"]);
    expect(problemsOf(minimal("log:\n  colour: true"))).toEqual(["log.colour: unknown key (expected one of level, format)"]);
    expect(problemsOf(minimal().replace(TABLES, "tables:\n  - { form: public.a, to: b.a }\n"))).toEqual([
      "tables[0].from: required",
      "tables[0].form: unknown key (did you mean from?)",
    ]);
  });

  it("bad table name", () => {
    const tables = `tables:
  - { from: public.users, to: auth_gateway.users }
  - { from: users, to: auth_gateway.users2 }
  - { from: public.a, to: "billing.a.b" }
  - { from: public.b, to: "9lives.b" }
`;
    expect(problemsOf(minimal().replace(TABLES, tables))).toEqual([
      'tables[1].from: expected "schema.table"',
      'tables[2].to: expected "schema.table"',
      'tables[3].to: expected "schema.table"',
    ]);
  });

  it("empty tables", () => {
    expect(problemsOf(minimal().replace(TABLES, "tables: []\n"))).toEqual(["tables: must list at least one table"]);
  });

  it("duplicate mapping", () => {
    const tables = `tables:
  - { from: public.users, to: auth_gateway.users }
  - { from: public.users, to: shared_services.users }
  - { from: public.users, to: auth_gateway.users }
`;
    expect(problemsOf(minimal().replace(TABLES, tables))).toEqual(["tables[2]: duplicate of tables[0] (same from and to)"]);
  });

  it("missing environment variable, reported once", () => {
    expect(problemsOf(minimal(), { TARGET_URL: ENV.TARGET_URL })).toEqual(["source.url: environment variable SOURCE_URL is not set"]);
  });

  it("malformed environment reference", () => {
    expect(problemsOf(minimal("log:\n  level: ${LEVEL"))).toEqual(['log.level: unterminated "${" (write "$${" for a literal "${")']);
    expect(problemsOf(minimal("log:\n  level: ${1LEVEL}"))).toEqual([
      'log.level: invalid environment reference: expected ${NAME} or ${NAME:-default} (write "$${" for a literal "${")',
    ]);
  });

  it("invalid connection URL, without echoing it", () => {
    const env = { SOURCE_URL: "host=old.db password=s3cret-source", TARGET_URL: "mysql://app:s3cret-target@new.db/new" };
    expect(problemsOf(minimal(), env)).toEqual([
      "source.url: not a PostgreSQL connection URL (from environment variable SOURCE_URL)",
      "target.url: not a PostgreSQL connection URL (from environment variable TARGET_URL)",
    ]);
  });

  it("bad byte size", () => {
    expect(problemsOf(minimal("apply:\n  batchMaxBytes: 16XB\n  queueMaxBytes: 0"))).toEqual([
      'apply.batchMaxBytes: unknown unit "XB"; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB',
      "apply.queueMaxBytes: must be at least 1 byte",
    ]);
    expect(problemsOf(minimal("apply:\n  batchMaxBytes: lots"))).toEqual([
      "apply.batchMaxBytes: expected a size such as 16MiB, 512KiB or a number of bytes",
    ]);
  });

  it("non-loopback listen without a token; a short token", () => {
    expect(problemsOf(minimal("control:\n  listen: 0.0.0.0:9187"))).toEqual([
      "control.adminToken: required when control.listen is not a loopback address",
    ]);
    expect(problemsOf(minimal("control:\n  adminToken: tok3n"))).toEqual(["control.adminToken: must be at least 16 characters"]);
  });

  it("bad listen address", () => {
    const reason = "expected host:port (IPv6 in brackets) with a port from 1 to 65535";
    for (const listen of ["9187", "localhost:70000", "::1:9187", "localhost:"]) {
      expect(problemsOf(minimal(`control:\n  listen: "${listen}"`))).toEqual([`control.listen: ${reason}`]);
    }
  });

  it("out-of-range number", () => {
    expect(problemsOf(minimal("snapshot:\n  workers: 65"))).toEqual(["snapshot.workers: must be at most 64"]);
    expect(problemsOf(minimal("snapshot:\n  workers: 0"))).toEqual(["snapshot.workers: must be at least 1"]);
    expect(problemsOf(minimal("apply:\n  retry: { initialDelayMs: 2000, maxDelayMs: 1000 }"))).toEqual([
      "apply.retry.maxDelayMs: must be at least initialDelayMs (2000)",
    ]);
  });

  it("bad enum value", () => {
    expect(problemsOf(minimal("snapshot:\n  format: csv"))).toEqual(["snapshot.format: expected one of auto, binary, text"]);
    expect(problemsOf(minimal("apply:\n  onError: skip"))).toEqual(["apply.onError: expected one of retry, stop"]);
  });

  it("bad slot or publication name", () => {
    expect(problemsOf(minimal("source:\n  url: ${SOURCE_URL}\n  slot: PgFerry\n  publication: pg-ferry").replace(/^source:\n {2}url: \$\{SOURCE_URL\}\n/, ""))).toEqual([
      "source.slot: must be 1 to 63 lowercase letters, digits or underscores",
      "source.publication: must be 1 to 63 lowercase letters, digits or underscores",
    ]);
  });

  it("YAML syntax error names the line", () => {
    expect(problemsOf(`source:\n  url: \${SOURCE_URL}\n slot: x\n${TABLES}`)).toEqual([
      "line 3, column 1: All mapping items must start at the same column",
    ]);
    expect(problemsOf(`source:\n  url: "postgres://u:s3cret@h/db\n`)).toEqual(['line 3, column 1: Missing closing "quote']);
    expect(problemsOf(`${minimal()}source:\n  url: postgres://u:s3cret@h/db\n`)).toEqual(["line 8, column 1: Map keys must be unique"]);
  });

  it("a top level that is not a mapping", () => {
    expect(problemsOf("- source\n- target\n")).toEqual(["(top level): expected a mapping with source, target and tables sections, got a list"]);
    expect(problemsOf("# nothing yet\n")).toEqual(["(top level): expected a mapping with source, target and tables sections, got an empty file"]);
  });

  it("reports every problem at once", () => {
    const text = `source:
  url: \${SOURCE_URL}
  slot: Bad-Slot
snapshot:
  workers: 100
apply:
  batchMaxRow: 5
control:
  listen: 10.0.0.5:9187
tables:
  - { from: public.users, to: auth_gateway }
`;
    expect(problemsOf(text, {})).toEqual([
      "source.url: environment variable SOURCE_URL is not set",
      "source.slot: must be 1 to 63 lowercase letters, digits or underscores",
      "target.url: required",
      "snapshot.workers: must be at most 64",
      "apply.batchMaxRow: unknown key (did you mean batchMaxRows?)",
      "control.adminToken: required when control.listen is not a loopback address",
      'tables[0].to: expected "schema.table"',
    ]);
  });

  it("ConfigError names the file and lists the problems", () => {
    const error = (() => {
      try {
        parseConfig(minimal("snapshot:\n  workers: 0"), "conf/prod.yaml", ENV);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("expected a ConfigError");
    })();
    expect(error.kind).toBe("config");
    expect(error.message).toBe("invalid config conf/prod.yaml:\n  - snapshot.workers: must be at least 1");
  });

  it("loadConfig: a missing file is a ConfigError naming it", () => {
    const missing = join(tmpdir(), "pgferry-no-such-dir", "pgferry.yaml");
    expect(() => loadConfig(missing, ENV)).toThrow(ConfigError);
    expect(() => loadConfig(missing, ENV)).toThrow(`invalid config ${missing}:\n  - (file): file not found`);
  });
});

describe("parseConfig: the sequences section (pgferry sequences sync)", () => {
  it("is optional; absent or partial, sequenceSettings gives the defaults", () => {
    const without = parseConfig(minimal(), "pgferry.yaml", ENV);
    expect(without.sequences).toBeUndefined();
    expect(sequenceSettings(without)).toEqual({ gap: 1000, extra: [], syncEverySeconds: 0 });
    expect(sequenceSettings(without)).toEqual(SEQUENCES_DEFAULTS);
    const partial = parseConfig(minimal("sequences:\n  gap: 50"), "pgferry.yaml", ENV);
    expect(sequenceSettings(partial)).toEqual({ gap: 50, extra: [], syncEverySeconds: 0 });
  });

  it("reads gap, extra and syncEverySeconds (numbers from the environment too)", () => {
    const text = minimal(`sequences:
  gap: \${GAP}
  syncEverySeconds: 30
  extra:
    - { target: security_service.api_keys_legacy_id_seq, source: public.api_keys_id_seq }
    - { target: security_service.api_keys_legacy_id_seq, source: public.service_tokens_id_seq }`);
    expect(parseConfig(text, "pgferry.yaml", { ...ENV, GAP: "0" }).sequences).toEqual({
      gap: 0,
      syncEverySeconds: 30,
      extra: [
        { target: "security_service.api_keys_legacy_id_seq", source: "public.api_keys_id_seq" },
        { target: "security_service.api_keys_legacy_id_seq", source: "public.service_tokens_id_seq" },
      ],
    });
  });

  it("reports each bad key by its path", () => {
    expect(problemsOf(minimal("sequences:\n  gap: -1\n  syncEverySeconds: 1.5"))).toEqual([
      "sequences.gap: must be at least 0",
      "sequences.syncEverySeconds: expected an integer, got 1.5",
    ]);
    expect(problemsOf(minimal("sequences:\n  extra:\n    - { target: orgs_seq, source: public.orgs_id_seq }\n    - { target: a.b, sources: public.x }"))).toEqual([
      'sequences.extra[0].target: expected "schema.sequence"',
      "sequences.extra[1].source: required",
      "sequences.extra[1].sources: unknown key (did you mean source?)",
    ]);
    expect(problemsOf(minimal("sequences:\n  gaps: 10"))).toEqual(["sequences.gaps: unknown key (did you mean gap?)"]);
  });
});
