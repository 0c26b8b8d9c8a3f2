/**
 * Throwaway PostgreSQL clusters started from the local server binaries: used by the test harness
 * (where no Docker engine answers), `npm run demo` and `npm run bench`. Each cluster lives in its own
 * temporary directory, listens on 127.0.0.1 and a unix socket inside that directory, and trusts
 * local connections; `destroy()` stops it and removes the directory.
 *
 * `initdb` and `postgres` refuse to run as root, so when we are root every server command runs as
 * the `postgres` OS user (through `runuser`).
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, chown, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface LocalClusterOptions {
  /** Used in the directory name and logs. */
  name: string;
  /** Server settings appended to postgresql.conf (on top of the defaults below). */
  settings?: Record<string, string | number>;
  /** Directory holding initdb, pg_ctl, postgres. Default: PG_BIN or the PostgreSQL 15 Debian path. */
  pgBin?: string;
  /** Parent of the cluster directory. Default: the OS temp dir. */
  baseDir?: string;
  /** Turn off fsync and friends: fine for tests, wrong for benchmarks of durable apply. */
  fast?: boolean;
}

const DEFAULT_SETTINGS: Record<string, string | number> = {
  listen_addresses: "'127.0.0.1'",
  wal_level: "logical",
  max_wal_senders: 40,
  max_replication_slots: 40,
  // Conflict detection between the two directions reads each row's last commit time and origin.
  track_commit_timestamp: "on",
  max_connections: 200,
  max_worker_processes: 16,
  max_logical_replication_workers: 8,
  max_sync_workers_per_subscription: 4,
  shared_buffers: "'128MB'",
  logging_collector: "off",
  log_min_messages: "warning",
  log_line_prefix: "'%m [%p] %d '",
};

const FAST_SETTINGS: Record<string, string | number> = {
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
};

export function defaultPgBin(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) return fromEnv;
  const debian = "/usr/lib/postgresql/15/bin";
  if (existsSync(join(debian, "postgres"))) return debian;
  const probe = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" });
  if (probe.status === 0 && probe.stdout.trim()) return probe.stdout.trim();
  return debian;
}

/** A free TCP port on 127.0.0.1 (the kernel picks it; a tiny race with other processes remains). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function runningAsRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

export class LocalCluster {
  readonly name: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly port: number;
  private readonly pgBin: string;

  private constructor(name: string, dir: string, port: number, pgBin: string) {
    this.name = name;
    this.dir = dir;
    this.dataDir = join(dir, "data");
    this.port = port;
    this.pgBin = pgBin;
  }

  /** initdb + start. The returned cluster is accepting connections. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const pgBin = options.pgBin ?? defaultPgBin();
    if (!existsSync(join(pgBin, "initdb"))) {
      throw new Error(
        `PostgreSQL server binaries not found in ${pgBin}; run scripts/install-postgres.sh (or set PG_BIN)`,
      );
    }
    const dir = await mkdtemp(join(options.baseDir ?? tmpdir(), `pgferry-${options.name}-`));
    const cluster = new LocalCluster(options.name, dir, await freePort(), pgBin);
    try {
      if (runningAsRoot()) await chownToPostgres(dir);
      await cluster.run("initdb", ["-D", cluster.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
      const settings = {
        ...DEFAULT_SETTINGS,
        ...(options.fast ? FAST_SETTINGS : {}),
        ...options.settings,
        port: cluster.port,
        unix_socket_directories: `'${dir}'`,
      };
      const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
      await appendFile(join(cluster.dataDir, "postgresql.conf"), `\n# pgferry embedded cluster\n${lines.join("\n")}\n`);
      await cluster.pgCtl("start");
      return cluster;
    } catch (error) {
      await cluster.destroy().catch(() => undefined);
      throw error;
    }
  }

  /** Connection URL over TCP as the superuser `postgres`. */
  url(database = "postgres", user = "postgres"): string {
    return `postgres://${encodeURIComponent(user)}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  async stop(mode: "smart" | "fast" | "immediate" = "fast"): Promise<void> {
    if (!existsSync(join(this.dataDir, "postmaster.pid"))) return;
    await this.run("pg_ctl", ["stop", "-D", this.dataDir, "-m", mode, "-w", "-t", "60"]);
  }

  async restart(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await this.stop(mode);
    await this.pgCtl("start");
  }

  async serverLog(): Promise<string> {
    return readFile(join(this.dir, "server.log"), "utf8").catch(() => "");
  }

  /** Stops the server (immediately) and removes its directory. Safe to call twice. */
  async destroy(): Promise<void> {
    if (existsSync(this.dir)) {
      await this.stop("immediate").catch(() => undefined);
      await rm(this.dir, { recursive: true, force: true });
    }
  }

  private async pgCtl(action: "start"): Promise<void> {
    try {
      await this.run("pg_ctl", [action, "-D", this.dataDir, "-l", join(this.dir, "server.log"), "-w", "-t", "60"]);
    } catch (error) {
      const log = await this.serverLog();
      throw new Error(`${this.name}: pg_ctl ${action} failed: ${(error as Error).message}\n${log.slice(-2000)}`, { cause: error });
    }
  }

  private async run(binary: string, args: string[]): Promise<void> {
    const command = join(this.pgBin, binary);
    const [file, argv] = runningAsRoot() ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
    await execFileAsync(file, argv, { cwd: this.dir, timeout: 120_000 });
  }
}

async function chownToPostgres(dir: string): Promise<void> {
  const id = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (id.status !== 0 || gid.status !== 0) {
    throw new Error("running as root, but there is no `postgres` OS user to run the server as; run scripts/install-postgres.sh");
  }
  await chown(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
}
