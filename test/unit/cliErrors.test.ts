/**
 * The CLI's one error report (src/cli/errorReport.ts): each SQLSTATE or cause gets its hint, the
 * database is named by side and by its URL without the password, the message appears once, and a
 * stack trace only for a bug. Also: argument validation (exit 2 with the usage line, before anything
 * is read), ${VAR} values named in config problems, node-pg's sslmode warning in one line, and the
 * daemon's recorded control port for `control.listen` port 0.
 */
import { Writable } from "node:stream";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError, formatErrorReport, hintFor, reportLogFields, translatePgWarnings, withQuietErrors } from "../../src/cli/errorReport.js";
import { daemonAddressFile, recordDaemonAddress, recordedDaemonListen } from "../../src/cli/daemonAddress.js";
import { main } from "../../src/cli/main.js";
import { parseConfig, type Config } from "../../src/config/index.js";
import { describeUrl } from "../../src/redact.js";
import { createLogger } from "../../src/log/logger.js";
import { ConfigError, PgferryError, endpointOf, tagEndpoint, withEndpoint } from "../../src/errors.js";

const SOURCE_URL = "postgres://app:S3cret-pw@db.example:6432/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem";
const MASKED = "postgres://app@db.example:6432/shop";
const STACK_FRAME = /^\s+at /m;

function dbError(code: string, message: string): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, "error");
  error.code = code;
  error.severity = "FATAL";
  return error;
}

function netError(code: string, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code, errno: -1, syscall: "connect", ...extra });
}

const fromSource = <T>(error: T): T => tagEndpoint(error, "source", SOURCE_URL);
const fromTarget = <T>(error: T): T => tagEndpoint(error, "target", "postgres://pgferry_target:S3cret-2@10.0.0.9/newdb");

function report(command: string, error: unknown): string {
  return formatErrorReport(command, describeError(error));
}

function occurrences(text: string, part: string): number {
  return text.split(part).length - 1;
}

describe("error report: side, masked URL, message once, hint, no stack", () => {
  it("wrong password (28P01)", () => {
    const text = report("plan", fromSource(dbError("28P01", 'password authentication failed for user "app"')));
    expect(text).toBe(
      `pgferry plan: cannot reach the source database ${MASKED}: password authentication failed for user "app" (SQLSTATE 28P01)\n` +
        "hint: the password in source.url is not the password of role app: check it (and the environment variable it comes from)\n",
    );
    expect(text).not.toContain("S3cret");
    expect(text).not.toMatch(STACK_FRAME);
  });

  it("unknown database (3D000) and unknown role (28000)", () => {
    const database = report("verify", fromTarget(dbError("3D000", 'database "newdb" does not exist')));
    expect(database).toContain('pgferry verify: cannot reach the target database postgres://pgferry_target@10.0.0.9/newdb: database "newdb" does not exist (SQLSTATE 3D000)\n');
    expect(database).toContain("hint: there is no database newdb on 10.0.0.9:5432: check the database name at the end of target.url (psql -l lists them)");
    expect(database).not.toContain("S3cret");

    const role = report("plan", fromSource(dbError("28000", 'role "app" does not exist')));
    expect(role).toContain(`cannot reach the source database ${MASKED}: role "app" does not exist (SQLSTATE 28000)`);
    expect(role).toContain("hint: there is no role app on db.example:6432: check the user name in source.url, or create the role (docs/privileges.sql");
  });

  it("SSL mode mismatch: the server has no TLS, or accepts this client only over TLS, or only without", () => {
    const noSsl = report("plan", fromSource(new Error("The server does not support SSL connections")));
    expect(noSsl).toContain(`pgferry plan: cannot reach the source database ${MASKED}: The server does not support SSL connections\n`);
    expect(noSsl).toMatch(/hint: the server runs without TLS \(ssl = off\) but source\.url asks for it; node-pg treats sslmode=prefer and require like verify-full .*set sslmode=disable/);

    const hostssl = report("run", fromTarget(dbError("28000", 'no pg_hba.conf entry for host "10.0.0.5", user "pgferry_target", database "newdb", no encryption')));
    expect(hostssl).toContain("cannot reach the target database");
    expect(hostssl).toContain("hint: the server accepts this client only over TLS (hostssl lines in pg_hba.conf): add sslmode=verify-full&sslrootcert=/path/to/ca.pem to target.url");

    const hostnossl = hintFor(dbError("28000", 'no pg_hba.conf entry for host "10.0.0.5", user "app", database "shop", SSL encryption'), { side: "source", url: MASKED });
    expect(hostnossl).toContain("only without TLS (hostnossl lines in pg_hba.conf): set sslmode=disable in source.url");

    const certificate = report("plan", fromSource(netError("DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate")));
    expect(certificate).toContain(`cannot reach the source database ${MASKED}: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)`);
    expect(certificate).toContain("hint: node-pg checks the server certificate for every sslmode but no-verify (prefer and require included): give the CA that signed it with sslrootcert=");
  });

  it("unknown host (ENOTFOUND, EAI_AGAIN) and connection refused (ECONNREFUSED)", () => {
    const notFound = report("slot", fromSource(netError("ENOTFOUND", "getaddrinfo ENOTFOUND db.example", { syscall: "getaddrinfo", hostname: "db.example" })));
    expect(notFound).toBe(
      `pgferry slot: cannot reach the source database ${MASKED}: getaddrinfo ENOTFOUND db.example\n` +
        "hint: the host name db.example in source.url does not resolve: check its spelling and the DNS\n",
    );
    const again = report("plan", fromSource(netError("EAI_AGAIN", "getaddrinfo EAI_AGAIN db.example", { syscall: "getaddrinfo" })));
    expect(again).toContain("hint: the host name db.example in source.url could not be resolved (a temporary DNS failure)");

    const refused = report("verify", fromTarget(netError("ECONNREFUSED", "connect ECONNREFUSED 10.0.0.9:5432", { address: "10.0.0.9", port: 5432 })));
    expect(refused).toBe(
      "pgferry verify: cannot reach the target database postgres://pgferry_target@10.0.0.9/newdb: connect ECONNREFUSED 10.0.0.9:5432\n" +
        "hint: nothing accepts connections at 10.0.0.9:5432: check the host and port in target.url, and that PostgreSQL is running and listens there (listen_addresses, port)\n",
    );
  });

  it("an AggregateError with an empty message (Node connecting to localhost on both families) still says what failed", () => {
    const aggregate = Object.assign(new AggregateError([netError("ECONNREFUSED", "connect ECONNREFUSED ::1:5432"), netError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432")], ""), { code: "ECONNREFUSED" });
    const text = report("plan", tagEndpoint(aggregate, "source", "postgres://app@localhost/shop"));
    expect(text).toContain("cannot reach the source database postgres://app@localhost/shop: connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432\n");
    expect(text).toContain("hint: nothing accepts connections at localhost:5432");
    expect(text).not.toMatch(STACK_FRAME);
  });

  it("privilege (42501): the missing GRANT for that side's role, and docs/privileges.sql", () => {
    const table = report("verify", fromSource(dbError("42501", "permission denied for table accounts")));
    expect(table).toContain(`pgferry verify: error on the source database ${MASKED}: permission denied for table accounts (SQLSTATE 42501)\n`);
    expect(table).toMatch(/hint: .*GRANT SELECT ON TABLE accounts TO app.*docs\/privileges\.sql/);
    expect(table).not.toContain("start pgferry again");

    const schema = describeError(fromTarget(dbError("42501", "permission denied for schema _pgferry")));
    expect(schema.hint).toMatch(/GRANT USAGE ON SCHEMA _pgferry TO pgferry_target/);
    expect(schema.hint).toContain("docs/privileges.sql");
  });

  it("no password in the URL although the server asks for one", () => {
    const text = report("plan", fromSource(new Error("SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string")));
    expect(text).toContain("cannot reach the source database");
    expect(text).toContain("hint: the server asks role app for a password and source.url has none");
  });

  it("a PgferryError wrapping the driver's error: the driver's message once, the wrapper's kind", () => {
    const cause = fromSource(dbError("28P01", 'password authentication failed for user "app"'));
    const wrapped = new PgferryError("preflight", `cannot reach the source database ${describeUrl(SOURCE_URL)}: ${cause.message}`, { cause, hint: "check source.url, the network and that the server is up" });
    const described = describeError(wrapped);
    expect(described).toMatchObject({ kind: "preflight", code: "28P01", endpoint: { side: "source", url: MASKED } });
    const text = formatErrorReport("run", described);
    expect(occurrences(text, "password authentication failed")).toBe(1);
    expect(text).toContain("hint: the password in source.url");

    // The log form of `pgferry run`: the same report as fields, no `url` key (the logger redacts it), no stack.
    expect(reportLogFields(described, wrapped)).toEqual({
      kind: "preflight",
      side: "source",
      database: MASKED,
      code: "28P01",
      hint: described.hint,
    });
  });

  it("pgferry's own errors keep their kind, message and hint; a config error names no database", () => {
    const state = report("status", new PgferryError("state", "slot pgferry is in use by walsender pid 42", { hint: "stop the running pgferry first" }));
    expect(state).toBe("pgferry status: state error: slot pgferry is in use by walsender pid 42\nhint: stop the running pgferry first\n");
    const config = describeError(new ConfigError("pgferry.yaml", ["source.url: required"]));
    expect(config.kind).toBe("config");
    expect(formatErrorReport("plan", config)).toBe("pgferry plan: config error: invalid config pgferry.yaml:\n  - source.url: required\nhint: fix the listed keys and start again\n");
  });

  it("a bug keeps its stack trace; an expected error never has one", () => {
    const bug = report("plan", new TypeError("Cannot read properties of undefined (reading 'columns')"));
    expect(bug).toMatch(/^pgferry plan: internal error: TypeError: Cannot read properties of undefined \(reading 'columns'\)\n/);
    expect(bug).toMatch(STACK_FRAME);
    expect(occurrences(bug, "Cannot read properties")).toBe(1);
    expect(describeError(new PgferryError("internal", "pipeline state vanished")).stack).toMatch(STACK_FRAME);

    for (const expected of [dbError("23505", "duplicate key"), netError("ECONNRESET", "read ECONNRESET"), new Error("Connection terminated unexpectedly"), new PgferryError("mapping", "x")]) {
      expect(describeError(expected).stack).toBeUndefined();
      expect(report("run", expected)).not.toMatch(STACK_FRAME);
    }
  });

  it("never prints a password, even one quoted in a message", () => {
    const text = report("plan", new Error(`could not parse postgres://app:S3cret-pw@db/shop and password=S3cret-pw`));
    expect(text).not.toContain("S3cret");
  });
});

describe("endpoint tags", () => {
  it("the first tag wins, survives wrapping, and changes nothing else about the error", async () => {
    const error = dbError("28P01", "password authentication failed");
    tagEndpoint(error, "target", "postgres://t:pw@t/db");
    tagEndpoint(error, "source", "postgres://s:pw@s/db");
    expect(endpointOf(error)).toEqual({ side: "target", url: "postgres://t@t/db" });
    expect(endpointOf(new PgferryError("connection", "x", { cause: error }))?.side).toBe("target");
    expect(error).toBeInstanceOf(pg.DatabaseError);
    expect(Object.keys(error)).not.toContain("endpoint");
    expect(JSON.stringify({ ...error })).not.toContain("postgres://");

    await expect(withEndpoint("source", SOURCE_URL, () => Promise.reject(netError("ECONNREFUSED", "connect ECONNREFUSED")))).rejects.toSatisfy(
      (e: unknown) => endpointOf(e)?.url === MASKED,
    );
  });
});

describe("run's log: expected errors without stack, each message once", () => {
  it("drops the stack and the repeated cause of a wrapped error; keeps a bug's stack", () => {
    const lines: string[] = [];
    const destination = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(chunk.toString("utf8")); done(); } });
    const log = withQuietErrors(createLogger({ level: "info", format: "json", destination }));
    const cause = dbError("57P01", "terminating connection due to administrator command");
    log.warn({ err: new PgferryError("connection", `cannot reach the source database postgres://u@h/db: ${cause.message}`, { cause }) }, "transient failure");
    log.error({ err: new TypeError("x is not a function") }, "bug");
    const [quiet, bug] = lines.map((l) => JSON.parse(l) as { err: { message: string; stack?: string; type: string } });
    expect(quiet?.err.message).toBe("cannot reach the source database postgres://u@h/db: terminating connection due to administrator command");
    expect(quiet?.err.stack).toBeUndefined();
    expect(quiet?.err.type).toBe("PgferryError");
    expect(bug?.err.stack).toMatch(STACK_FRAME);
  });
});

describe("node-pg's sslmode warning", () => {
  it("becomes one line on stderr instead of a nine-line process warning", async () => {
    const written: string[] = [];
    const stderr = new Writable({ write(chunk: Buffer, _encoding, done) { written.push(chunk.toString("utf8")); done(); } });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on("warning", onWarning);
    try {
      translatePgWarnings(stderr);
      // Parsing a URL with sslmode=require is what makes pg-connection-string warn (once per process).
      new pg.Client({ connectionString: "postgres://u@127.0.0.1:1/db?sslmode=require" });
      process.emitWarning("an unrelated warning");
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(written).toEqual([
      "pgferry: note: sslmode=require is treated as verify-full by node-pg: the server certificate is checked (sslrootcert=/path/to/ca.pem names its CA; sslmode=no-verify encrypts without checking it)\n",
    ]);
    expect(warnings).toEqual(["an unrelated warning"]);
  });
});

describe("arguments are validated before anything is read (exit 2, usage line)", () => {
  async function cli(...argv: string[]): Promise<{ code: number; stderr: string }> {
    let stderr = "";
    const sink = new Writable({ write(chunk: Buffer, _encoding, done) { stderr += chunk.toString("utf8"); done(); } });
    const code = await main(argv, { stdout: new Writable({ write: (_c, _e, done) => done() }), stderr: sink, env: {} });
    return { code, stderr };
  }

  it.each([
    [["plan", "--bogus"], "pgferry plan: unknown option --bogus\nusage: pgferry plan [--config pgferry.yaml] [--ddl | --check] [--reverse]\n"],
    [["plan", "--chek"], "pgferry plan: unknown option --chek (did you mean --check?)\n"],
    [["plan", "--config"], "pgferry plan: option --config needs a value\n"],
    [["plan", "--ddl", "--check"], "pgferry plan: --ddl and --check exclude each other: --ddl prints target DDL, --check runs the full preflight\n"],
    [["plan", "extra"], "pgferry plan: unexpected argument 'extra'\n"],
    [["verify", "--examples", "abc"], "pgferry verify: --examples takes a whole number of keys to list (0 or more), not 'abc'\nusage: pgferry verify"],
    [["verify", "--table", "accounts"], "pgferry verify: --table takes schema.table, not 'accounts'\n"],
    [["status", "--json=yes"], "pgferry status: option --json takes no value\nusage: pgferry status"],
    [["slot"], "pgferry slot: missing subcommand: slot drop\nusage: pgferry slot drop [--config pgferry.yaml]\n"],
    [["slot", "create"], "pgferry slot: unknown subcommand 'create' (slot has one: drop)\n"],
    [["slot", "drop", "now"], "pgferry slot: unexpected argument 'now'\n"],
    [["resync"], "pgferry resync: missing the table to resync (schema.table)\n"],
    [["run", "-x"], "pgferry run: unknown option -x\nusage: pgferry run [--config pgferry.yaml] [--direction forward|reverse|both]\n"],
    [["run", "--direction", "sideways"], "pgferry run: --direction must be forward, reverse or both, not 'sideways'\n"],
    [["stauts"], "pgferry: unknown command 'stauts' (did you mean status?)\n"],
  ])("%j", async (argv, expected) => {
    const { code, stderr } = await cli(...argv);
    expect(code).toBe(2);
    expect(stderr).toContain(expected);
  });
});

describe("${VAR} values in config problems", () => {
  const base = "source:\n  url: postgres://u@s/db\ntarget:\n  url: postgres://u@t/db\ntables:\n  - { from: public.a, to: app.a }\n";

  function problems(yaml: string, env: Record<string, string>): readonly string[] {
    try {
      parseConfig(yaml, "pgferry.yaml", env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  }

  it("names the variable a non-numeric integer came from, never its value", () => {
    const found = problems(`${base}snapshot:\n  workers: \${PGFERRY_WORKERS}\n  chunkRows: "\${CHUNK:-many}"\n`, { PGFERRY_WORKERS: "four-S3cret" });
    expect(found).toEqual([
      "snapshot.workers: expected an integer, got a string (from environment variable PGFERRY_WORKERS)",
      "snapshot.chunkRows: expected an integer, got a string (from the default in ${CHUNK:-…}, CHUNK being unset or empty)",
    ]);
    expect(found.join("\n")).not.toContain("S3cret");
  });

  it("a valid value from the environment is not mentioned", () => {
    expect(problems(`${base}snapshot:\n  workers: \${PGFERRY_WORKERS}\n`, { PGFERRY_WORKERS: "8" })).toEqual([]);
  });
});

describe("the daemon's control port when control.listen has port 0", () => {
  let dir: string;
  const config = (listen: string, slot = "pgferry"): Config =>
    parseConfig(`source:\n  url: postgres://u@s/db\n  slot: ${slot}\ntarget:\n  url: postgres://u:pw@t/db\ncontrol:\n  listen: "${listen}"\ntables:\n  - { from: public.a, to: app.a }\n`, "x.yaml", {});

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "pgferry-daemon-address-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("is recorded by the daemon, found by status while it runs, and forgotten when it stops", () => {
    const zero = config("127.0.0.1:0");
    expect(recordedDaemonListen(zero, dir)).toBeUndefined();
    const forget = recordDaemonAddress(zero, 43210, dir);
    expect(recordedDaemonListen(zero, dir)).toBe("127.0.0.1:43210");
    // Another pipeline (another slot) has another record.
    expect(recordedDaemonListen(config("127.0.0.1:0", "other"), dir)).toBeUndefined();
    forget();
    expect(recordedDaemonListen(zero, dir)).toBeUndefined();
  });

  it("is not recorded or read for a fixed port, and a dead process's record is ignored", async () => {
    const fixed = config("127.0.0.1:9187");
    recordDaemonAddress(fixed, 9187, dir)();
    expect(recordedDaemonListen(fixed, dir)).toBeUndefined();

    const zero = config("[::1]:0");
    await writeFile(daemonAddressFile(zero, dir), JSON.stringify({ pid: 2 ** 22 + 12345, host: "::1", port: 5555 }));
    expect(recordedDaemonListen(zero, dir)).toBeUndefined();
    await writeFile(daemonAddressFile(zero, dir), JSON.stringify({ pid: process.pid, host: "::1", port: 5555 }));
    expect(recordedDaemonListen(zero, dir)).toBe("[::1]:5555");
  });
});
