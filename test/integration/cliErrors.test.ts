/**
 * The built CLI on real-world mistakes, as an operator meets them. A wrong password, an unknown
 * database and a closed port, for plan, plan --check, plan --ddl, verify, slot drop and run: each
 * names the database (side and URL without the password), gives the driver's message once, a hint,
 * no stack trace, exit 1. Bad arguments exit 2 with the usage line. Also: plan --ddl emits CREATE
 * EXTENSION for a vector column, plain plan says what only --check checks, an sslmode the server
 * cannot do (and node-pg's warning about it) in a few lines, `status` finds a daemon listening on
 * port 0, and a non-numeric ${VAR} is named in the config error.
 *
 * Runs on its own cluster that asks for SCRAM passwords over TCP (the shared test servers trust
 * everyone); the test's own set-up goes through the unix socket as the superuser.
 */
import { execFile } from "node:child_process";
import { chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineStatus } from "../../src/control/pipelineMonitor.js";
import { freePort, LocalCluster } from "../../tools/embedded/localCluster.js";
import { CLI, runCli, writeConfigFile, type ChildRun } from "../harness/processRunner.js";
import { postgresOwner } from "../harness/tls.js";
import { waitFor } from "../harness/waitFor.js";

const execFileAsync = promisify(execFile);

// Both contain "S3cr3t", so one pattern finds either in any output.
const PASSWORD = "Pw-S3cr3t-cli-errors";
const WRONG_PASSWORD = "Wr0ng-S3cr3t-cli";
const SECRET = /S3cr3t/;
const STACK_FRAME = /^\s+at /m;

let cluster: LocalCluster;
let hbaDir: string;
const pools: pg.Pool[] = [];
const children: ChildRun[] = [];

/** The superuser through the unix socket (trusted). */
function admin(database: string): pg.Pool {
  const pool = new pg.Pool({ host: cluster.dir, port: cluster.port, user: "postgres", database, max: 2 });
  pools.push(pool);
  return pool;
}

function url(database: string, options: { password?: string; port?: number; query?: string } = {}): string {
  return `postgres://postgres:${encodeURIComponent(options.password ?? PASSWORD)}@127.0.0.1:${options.port ?? cluster.port}/${database}${options.query ?? ""}`;
}

/** The URL as pgferry shows it: no password, no query. */
function shown(database: string, port = cluster.port): string {
  return `postgres://postgres@127.0.0.1:${port}/${database}`;
}

function configYaml(options: { slot?: string; extra?: string; columns?: string } = {}): string {
  const slot = options.slot ?? "pgferry_cli_errors";
  return `source:
  url: \${SOURCE_URL}
  slot: ${slot}
  publication: ${slot}
target:
  url: \${TARGET_URL}
apply:
  retry: { maxAttempts: 1, initialDelayMs: 50, maxDelayMs: 100 }
log:
  format: json
${options.extra ?? "control:\n  listen: 127.0.0.1:0\n"}tables:
  - from: public.accounts
    to: app.accounts${options.columns ?? ""}
`;
}

interface Result {
  code: number | null;
  output: string;
}

async function cli(args: string[], env: Record<string, string>): Promise<Result> {
  const run = runCli(args, env);
  children.push(run);
  const { code } = await run.exited;
  return { code, output: run.output.join("") };
}

function count(text: string, part: string): number {
  return text.split(part).length - 1;
}

beforeAll(async () => {
  hbaDir = await mkdtemp(join(tmpdir(), "pgferry-cli-errors-"));
  const hbaFile = join(hbaDir, "pg_hba.conf");
  await writeFile(hbaFile, ["local  all          all                 trust", "host   all          all  127.0.0.1/32   scram-sha-256", "host   replication  all  127.0.0.1/32   scram-sha-256", ""].join("\n"));
  // The server runs as the postgres OS user when we are root: it must be able to read the file.
  const owner = postgresOwner();
  if (owner) for (const path of [hbaDir, hbaFile]) await chown(path, owner.uid, owner.gid);
  cluster = await LocalCluster.start({ name: "cli-errors", fast: true, settings: { hba_file: `'${hbaFile}'`, password_encryption: "'scram-sha-256'" } });
  const postgres = admin("postgres");
  await postgres.query(`ALTER ROLE postgres PASSWORD '${PASSWORD}'`);
  await postgres.query("CREATE DATABASE src");
  await postgres.query("CREATE DATABASE tgt");
  await admin("src").query(`CREATE EXTENSION vector;
    CREATE TABLE public.accounts (id bigint PRIMARY KEY, email text NOT NULL, embedding vector(3));
    INSERT INTO public.accounts SELECT g, 'user' || g || '@example.com', '[1,2,3]' FROM generate_series(1, 50) g`);
  await admin("tgt").query(`CREATE EXTENSION vector;
    CREATE SCHEMA app;
    CREATE TABLE app.accounts (id bigint PRIMARY KEY, email text NOT NULL, embedding vector(3))`);
});

afterAll(async () => {
  for (const run of children) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
  await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  await cluster?.destroy();
  if (hbaDir) await rm(hbaDir, { recursive: true, force: true });
});

const COMMANDS: readonly string[][] = [["plan"], ["plan", "--check"], ["plan", "--ddl"], ["verify"], ["slot", "drop"], ["run"]];

/** What every report of a database that cannot be reached must say, whichever command printed it. */
function expectReport(result: Result, args: string[], side: "source" | "target", where: string, message: string): void {
  const context = `pgferry ${args.join(" ")}:\n${result.output}`;
  expect(result.code, context).toBe(1);
  // The daemon's log is JSON: its quotes are escaped there.
  expect(count(result.output, args[0] === "run" ? JSON.stringify(message).slice(1, -1) : message), context).toBe(1);
  expect(result.output, context).not.toMatch(STACK_FRAME);
  expect(result.output, context).not.toMatch(SECRET);
  const headline = `cannot reach the ${side} database ${where}: ${message}`;
  if (args[0] === "run") {
    // The daemon logs (JSON here): one fatal line, the failure once, hint and side as fields.
    const lines = result.output.trim().split("\n").map((line) => JSON.parse(line) as { level: number; msg: string; side?: string; hint?: string });
    const fatal = lines.filter((l) => l.level === 60);
    expect(fatal, context).toHaveLength(1);
    expect(fatal[0]?.msg, context).toContain(`cannot start: ${headline}`);
    expect(fatal[0]?.side, context).toBe(side);
    expect(fatal[0]?.hint, context).toBeTruthy();
  } else {
    expect(result.output, context).toContain(`pgferry ${args[0]}: ${headline}`);
    expect(result.output, context).toMatch(/^hint: \S/m);
  }
}

describe("a database that cannot be reached: side, URL without password, message once, hint, no stack, exit 1", () => {
  let file: string;
  beforeAll(async () => {
    file = await writeConfigFile(configYaml());
  });

  it("wrong password (the source)", async () => {
    for (const args of COMMANDS) {
      const result = await cli([...args, "--config", file], { SOURCE_URL: url("src", { password: WRONG_PASSWORD }), TARGET_URL: url("tgt") });
      expectReport(result, args, "source", shown("src"), 'password authentication failed for user "postgres"');
      if (args[0] !== "run") expect(result.output).toContain("hint: the password in source.url is not the password of role postgres");
    }
  });

  it("unknown database (the target; the source for plan --ddl, which reads only the source)", async () => {
    for (const args of COMMANDS) {
      const ddl = args.includes("--ddl");
      const env = ddl ? { SOURCE_URL: url("nodb_cli"), TARGET_URL: url("tgt") } : { SOURCE_URL: url("src"), TARGET_URL: url("nodb_cli") };
      const result = await cli([...args, "--config", file], env);
      expectReport(result, args, ddl ? "source" : "target", shown("nodb_cli"), 'database "nodb_cli" does not exist');
      if (args[0] !== "run") expect(result.output).toContain(`hint: there is no database nodb_cli on 127.0.0.1:${cluster.port}`);
    }
  });

  it("connection refused: a closed port (the source); the daemon instead waits it out as an outage, past its retry budget", async () => {
    const closed = await freePort();
    for (const args of COMMANDS.filter((c) => c[0] !== "run")) {
      const result = await cli([...args, "--config", file], { SOURCE_URL: url("src", { port: closed }), TARGET_URL: url("tgt") });
      expectReport(result, args, "source", shown("src", closed), `connect ECONNREFUSED 127.0.0.1:${closed}`);
      expect(result.output).toContain(`hint: nothing accepts connections at 127.0.0.1:${closed}: check the host and port in source.url`);
    }
    // A daemon started during a maintenance window keeps trying (the config allows 1 attempt for
    // other failures), naming the side once per attempt, and a SIGTERM ends it cleanly.
    const daemon = runCli(["run", "--config", file], { SOURCE_URL: url("src", { port: closed }), TARGET_URL: url("tgt") });
    children.push(daemon);
    const waits = () =>
      daemon.output
        .join("")
        .split("\n")
        .filter((line) => line.includes('"level":40') && line.includes("database unavailable") && line.includes(`cannot reach the source database ${shown("src", closed)}`));
    await waitFor(waits, { description: "three outage retries of the source", until: (lines) => lines.length >= 3, timeoutMs: 30_000, intervalMs: 100 });
    expect(daemon.child.exitCode).toBeNull();
    expect(daemon.output.join("")).not.toMatch(STACK_FRAME);
    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
  });

  it("an sslmode the server cannot do: the failure and node-pg's sslmode warning in one line each", async () => {
    const result = await cli(["plan", "--config", file], { SOURCE_URL: url("src", { query: "?sslmode=require" }), TARGET_URL: url("tgt") });
    expect(result.code).toBe(1);
    expect(result.output).toContain(`pgferry plan: cannot reach the source database ${shown("src")}: The server does not support SSL connections\n`);
    expect(result.output).toMatch(/^hint: the server runs without TLS \(ssl = off\) but source\.url asks for it/m);
    expect(result.output).toContain("pgferry: note: sslmode=require is treated as verify-full by node-pg");
    expect(result.output).not.toContain("SECURITY WARNING");
    expect(result.output).not.toMatch(STACK_FRAME);
    expect(result.output.trim().split("\n")).toHaveLength(3);
  });
});

describe("bad arguments: exit 2 with the command's usage line, nothing read", () => {
  it.each([
    [["plan", "--ddl", "--check"], "pgferry plan: --ddl and --check exclude each other", "usage: pgferry plan [--config pgferry.yaml] [--ddl | --check]"],
    [["verify", "--examples", "abc"], "pgferry verify: --examples takes a whole number of keys to list (0 or more), not 'abc'", "usage: pgferry verify "],
    [["verify", "--bogus"], "pgferry verify: unknown option --bogus", "usage: pgferry verify "],
    [["run", "--config"], "pgferry run: option --config needs a value", "usage: pgferry run [--config pgferry.yaml]"],
    [["slot", "remove"], "pgferry slot: unknown subcommand 'remove' (slot has one: drop)", "usage: pgferry slot drop [--config pgferry.yaml]"],
    [["status", "now"], "pgferry status: unexpected argument 'now'", "usage: pgferry status "],
    [["replicate"], "pgferry: unknown command 'replicate'", "Usage: pgferry <command> [options]"],
  ])("%j", async (args, problem, usage) => {
    // A config file that does not exist: validation comes first, so it is never opened.
    const result = await cli([...args, ...(args.includes("--config") ? [] : ["--config", "/nonexistent/pgferry.yaml"])], {});
    expect(result.code).toBe(2);
    expect(result.output).toContain(problem);
    expect(result.output).toContain(usage);
    expect(result.output).not.toContain("/nonexistent");
  });

  it("a ${VAR} that is not a number names the variable (exit 2)", async () => {
    const file = await writeConfigFile(configYaml().replace("apply:\n", "snapshot:\n  workers: ${PGFERRY_WORKERS}\napply:\n"));
    const result = await cli(["plan", "--config", file], { SOURCE_URL: url("src"), TARGET_URL: url("tgt"), PGFERRY_WORKERS: "four" });
    expect(result.code).toBe(2);
    expect(result.output).toContain("snapshot.workers: expected an integer, got a string (from environment variable PGFERRY_WORKERS)");
    expect(result.output).not.toContain("four");
  });
});

describe("plan", () => {
  it("--ddl emits CREATE EXTENSION for the vector column's type, and the DDL applies to an empty database", async () => {
    const file = await writeConfigFile(configYaml());
    const result = await cli(["plan", "--ddl", "--config", file], { SOURCE_URL: url("src"), TARGET_URL: url("tgt") });
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('CREATE EXTENSION IF NOT EXISTS vector;\nCREATE SCHEMA IF NOT EXISTS "app";\n');
    expect(result.output).toContain('  "embedding" vector(3),');
    await admin("postgres").query("CREATE DATABASE ddl_target");
    await admin("ddl_target").query(result.output);
    const { rows } = await admin("ddl_target").query<{ type: string }>("SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'app.accounts'::regclass AND attname = 'embedding'");
    expect(rows).toEqual([{ type: "vector(3)" }]);
  });

  it("plain plan says that SQL expressions are checked by --check only; --check finds the broken one", async () => {
    const file = await writeConfigFile(configYaml({ columns: "\n    columns:\n      email: { sql: \"email::no_such_type\" }" }));
    const env = { SOURCE_URL: url("src"), TARGET_URL: url("tgt") };
    const plain = await cli(["plan", "--config", file], env);
    expect(plain.code, plain.output).toBe(0);
    expect(plain.output).toContain("note: plan checked tables, columns, keys and types against the catalogs only; SQL expressions (columns.sql, where), privileges and server settings are checked by `pgferry plan --check`");
    const check = await cli(["plan", "--check", "--config", file], env);
    expect(check.code, check.output).toBe(1);
    expect(check.output).toMatch(/no_such_type/);
  });
});

describe("status with control.listen port 0", () => {
  it("finds the running daemon on the port it got, and says it is not running once it stopped", async () => {
    const slot = "pgferry_cli_port0";
    const file = await writeConfigFile(configYaml({ slot }));
    const env = { SOURCE_URL: url("src"), TARGET_URL: url("tgt") };
    const daemon = runCli(["run", "--config", file], env);
    children.push(daemon);
    await waitFor(() => daemon.output.join("").includes('"msg":"streaming"'), { description: "the daemon streaming", timeoutMs: 60_000, intervalMs: 100 }).catch((error: Error) => {
      throw new Error(`${error.message}\n${daemon.output.join("").slice(-3000)}`);
    });

    const status = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, "status", "--config", file, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
        return { code: 0, stdout, stderr };
      } catch (error) {
        const e = error as { code?: number; stdout?: string; stderr?: string };
        return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
      }
    };
    const live = await status("--json");
    expect(live.code, live.stderr).toBe(0);
    expect(JSON.parse(live.stdout) as PipelineStatus).toMatchObject({ pipeline: slot, phase: "streaming" });

    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    const stored = await status();
    expect(stored.code, stored.stderr).toBe(0);
    expect(stored.stdout).toContain("pgferry is not running: no running pgferry recorded its control port for this config (control.listen 127.0.0.1:0 picks a free port); state read from the target instead");
    expect(stored.stdout).toMatch(/^public\.accounts\s+ready\s+50\s/m);
  });
});
