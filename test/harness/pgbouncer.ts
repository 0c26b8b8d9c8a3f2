/**
 * A PgBouncer (Debian's `pgbouncer` package; scripts/install-test-tools.sh installs it) in front of a
 * test server, for the tests of what pgferry does when a URL points at a pooler. Each instance has
 * its own directory (ini, userlist, log, pid file), listens on a free 127.0.0.1 port and no unix
 * socket, trusts its clients and logs in to the server with the server URL's user and password.
 * PgBouncer refuses to run as root, so as root it runs as the `postgres` OS user (through `runuser`).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { chown, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "../../tools/embedded/localCluster.js";
import { waitFor } from "./waitFor.js";

export interface PgbouncerOptions {
  /** Default `transaction`. */
  poolMode?: "transaction" | "session";
  /** PgBouncer's `ignore_startup_parameters`, e.g. `["extra_float_digits", "options"]`. Default none. */
  ignoreStartupParameters?: readonly string[];
}

export interface Pgbouncer {
  port: number;
  /** `serverUrl` with PgBouncer's port instead of the server's, for `database` (default the server URL's). */
  url(database?: string): string;
  log(): Promise<string>;
  /** Stops PgBouncer (immediate shutdown) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** The pgbouncer binary (Debian puts it in /usr/sbin, which a non-root PATH may lack); fails, never skips. */
export function pgbouncerBinary(): string {
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin"]) {
    const path = join(dir, "pgbouncer");
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  throw new Error("pgbouncer is not installed: run `bash scripts/install-test-tools.sh` (as root; `npm test` runs it) to install Debian's pgbouncer package");
}

function runningAsRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function postgresOsUser(): { uid: number; gid: number } {
  const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) throw new Error("running as root, but there is no `postgres` OS user to run pgbouncer as");
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** PgBouncer's userlist.txt quoting: a double quote is doubled. */
function quoted(value: string): string {
  return `"${value.replace(/"/g, '""')}"`;
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts a PgBouncer in front of the server of `serverUrl`; resolves once it accepts connections. */
export async function startPgbouncer(serverUrl: string, options: PgbouncerOptions = {}): Promise<Pgbouncer> {
  const binary = pgbouncerBinary();
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username) || "postgres";
  const password = decodeURIComponent(server.password);
  const dir = await mkdtemp(join(tmpdir(), "pgferry-pgbouncer-"));
  const port = await freePort();
  const ini = join(dir, "pgbouncer.ini");
  const logFile = join(dir, "pgbouncer.log");
  const ignore = options.ignoreStartupParameters ?? [];
  await writeFile(
    ini,
    [
      "[databases]",
      `* = host=${server.hostname.replace(/^\[|\]$/g, "")} port=${server.port || "5432"}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "userlist.txt")}`,
      `pool_mode = ${options.poolMode ?? "transaction"}`,
      `logfile = ${logFile}`,
      `pidfile = ${join(dir, "pgbouncer.pid")}`,
      ...(ignore.length > 0 ? [`ignore_startup_parameters = ${ignore.join(", ")}`] : []),
      "",
    ].join("\n"),
  );
  // With auth_type = trust clients give no password; PgBouncer logs in to the server with this one.
  await writeFile(join(dir, "userlist.txt"), `${quoted(user)} ${quoted(password)}\n`);
  if (runningAsRoot()) {
    const { uid, gid } = postgresOsUser();
    for (const path of [dir, ini, join(dir, "userlist.txt")]) await chown(path, uid, gid);
  }
  const [file, args] = runningAsRoot() ? ["runuser", ["-u", "postgres", "--", binary, ini]] : [binary, [ini]];
  const child: ChildProcess = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
  const stderr: string[] = [];
  child.stderr?.on("data", (d: Buffer) => stderr.push(d.toString("utf8")));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let running = true;
  void exited.then(() => {
    running = false;
  });
  const log = () => readFile(logFile, "utf8").catch(() => "");
  const stop = async () => {
    if (running) {
      // The pid file holds PgBouncer's own pid (runuser's child, another user: root may signal it).
      const pid = Number((await readFile(join(dir, "pgbouncer.pid"), "utf8").catch(() => "")).trim());
      if (pid > 0) process.kill(pid, "SIGTERM");
      else child.kill("SIGTERM");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const died = exited.then(async () => {
      throw new Error(`pgbouncer exited before listening: ${stderr.join("")}${await log()}`);
    });
    await Promise.race([died, waitFor(() => portAnswers(port), { description: `pgbouncer listening on 127.0.0.1:${port}`, timeoutMs: 15_000 })]);
    died.catch(() => undefined);
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return {
    port,
    url(database?: string) {
      const url = new URL(serverUrl);
      url.hostname = "127.0.0.1";
      url.port = String(port);
      url.password = "";
      if (database !== undefined) url.pathname = `/${database}`;
      return url.toString();
    },
    log,
    stop,
  };
}
