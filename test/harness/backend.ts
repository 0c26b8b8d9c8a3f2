/**
 * Where the test PostgreSQL servers come from. A Docker engine, where one answers, runs the pgvector
 * image through testcontainers; otherwise (this machine, CI) throwaway clusters are started from the
 * local server binaries. PGFERRY_TEST_BACKEND=docker|local forces one.
 */
import { existsSync } from "node:fs";
import { request } from "node:http";
import { LocalCluster } from "../../tools/embedded/localCluster.js";

export interface TestServer {
  /** Superuser URL of the server's `postgres` database. */
  url(database?: string): string;
  restart(mode: "fast" | "immediate"): Promise<void>;
  stop(mode: "fast" | "immediate"): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export interface TestServers {
  backend: "docker" | "local";
  source: TestServer;
  target: TestServer;
}

const DOCKER_IMAGE = "pgvector/pgvector:0.8.0-pg15";

async function dockerAnswers(): Promise<boolean> {
  if (process.env.DOCKER_HOST) return true;
  const socketPath = "/var/run/docker.sock";
  if (!existsSync(socketPath)) return false;
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => { req.destroy(); resolve(false); });
    req.end();
  });
}

async function startLocal(): Promise<TestServers> {
  const [source, target] = await Promise.all([
    LocalCluster.start({ name: "test-source", fast: true }),
    LocalCluster.start({ name: "test-target", fast: true }),
  ]);
  const wrap = (c: LocalCluster): TestServer => ({
    url: (db) => c.url(db),
    restart: (mode) => c.restart(mode),
    stop: (mode) => c.stop(mode),
    start: () => c.restart("fast"),
    destroy: () => c.destroy(),
  });
  return { backend: "local", source: wrap(source), target: wrap(target) };
}

async function startDocker(): Promise<TestServers> {
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const start = () =>
    new PostgreSqlContainer(DOCKER_IMAGE)
      .withUsername("postgres")
      .withPassword("postgres")
      .withCommand(["postgres", "-c", "wal_level=logical", "-c", "max_replication_slots=40", "-c", "track_commit_timestamp=on", "-c", "max_wal_senders=40", "-c", "fsync=off"])
      .start();
  const [source, target] = await Promise.all([start(), start()]);
  const wrap = (c: Awaited<ReturnType<typeof start>>): TestServer => ({
    url: (db = "postgres") => `postgres://postgres:postgres@${c.getHost()}:${c.getPort()}/${db}`,
    restart: async () => { await c.restart(); },
    stop: async () => { await c.stop({ remove: false }); },
    start: async () => { await c.restart(); },
    destroy: async () => { await c.stop(); },
  });
  return { backend: "docker", source: wrap(source), target: wrap(target) };
}

export async function startTestServers(): Promise<TestServers> {
  const wanted = process.env.PGFERRY_TEST_BACKEND ?? "auto";
  if (wanted === "docker" || (wanted === "auto" && (await dockerAnswers()))) return startDocker();
  return startLocal();
}

export interface OwnServers {
  servers: TestServers;
  /** Superuser pools on each server's `postgres` database (vector installed); idle errors from restarts are ignored. */
  source: import("pg").Pool;
  target: import("pg").Pool;
  close(): Promise<void>;
}

/** A pair of servers for one test file that restarts them or needs its own settings, with pools. */
export async function startOwnServers(): Promise<OwnServers> {
  const { default: pg } = await import("pg");
  const servers = await startTestServers();
  const source = new pg.Pool({ connectionString: servers.source.url(), max: 4 });
  const target = new pg.Pool({ connectionString: servers.target.url(), max: 4 });
  for (const pool of [source, target]) {
    pool.on("error", () => undefined);
    await pool.query("CREATE EXTENSION IF NOT EXISTS vector");
  }
  return {
    servers,
    source,
    target,
    async close() {
      await Promise.all([source.end(), target.end()]);
      await Promise.all([servers.source.destroy(), servers.target.destroy()]);
    },
  };
}
