/**
 * The container image's layout, proved without a Docker engine. The Dockerfile's runtime stage is
 * replayed into a temp dir standing for the image's root: its COPY lines (this repository's built
 * dist/ standing for the build stage's, whose COPY lines mirror the repository under its WORKDIR)
 * and its `npm ci`; its other RUN steps (apt-get install tini) are skipped. Then the ENTRYPOINT
 * runs from there: `--version`, and the CMD — a real `run` of the Compose config and seed
 * (deploy/compose) against the test databases, through snapshot and streaming, with /healthz,
 * /readyz and the image's own HEALTHCHECK command answering — until SIGTERM exits 0. The init
 * (tini) is used where it is installed, as in the image; elsewhere node runs directly.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { basename, join, posix, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabases, type TestDatabases } from "../harness/databases.js";
import { waitFor } from "../harness/waitFor.js";
import { dockerfile, type Instruction } from "../harness/dockerfile.js";

const ROOT = resolve(import.meta.dirname, "../..");
const COMPOSE = join(ROOT, "deploy/compose");
const run = promisify(execFile);


/** Splits at FROM; `FROM image AS name` names the stage. */
function stages(instructions: readonly Instruction[]): { name: string | undefined; steps: Instruction[] }[] {
  const out: { name: string | undefined; steps: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") out.push({ name: /\bAS\s+(\S+)/i.exec(instruction.args)?.[1], steps: [] });
    out.at(-1)?.steps.push(instruction);
  }
  return out;
}

const workdirOf = (steps: readonly Instruction[]) => steps.filter((s) => s.keyword === "WORKDIR").reduce((dir, s) => posix.resolve(dir, s.args), "/");

interface CopyStep { from: string | undefined; sources: string[]; dest: string }

function copyStep(args: string): CopyStep {
  const words = args.split(/\s+/);
  const paths = words.filter((w) => !w.startsWith("--"));
  const dest = paths.pop()!;
  return { from: words.find((w) => w.startsWith("--from="))?.slice("--from=".length), sources: paths, dest };
}

interface Image {
  root: string;
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  healthcheck: string[];
  skipped: string[];
}

/** Replays the last stage of the Dockerfile into `root` (the image's `/`). */
async function replayRuntimeStage(root: string): Promise<Image> {
  const all = stages(dockerfile(readFileSync(join(ROOT, "Dockerfile"), "utf8")));
  const runtime = all.at(-1)!;
  const image: Image = { root, workdir: "/", env: {}, entrypoint: [], cmd: [], healthcheck: [], skipped: [] };
  const inImage = (path: string) => join(root, posix.resolve(image.workdir, path));
  for (const { keyword, args } of runtime.steps) {
    switch (keyword) {
      case "WORKDIR":
        image.workdir = posix.resolve(image.workdir, args);
        mkdirSync(inImage("."), { recursive: true });
        break;
      case "ENV": {
        const [name, ...value] = args.split("=");
        image.env[name!] = value.join("=");
        break;
      }
      case "COPY": {
        const step = copyStep(args);
        const build = step.from === undefined ? undefined : all.find((s) => s.name === step.from);
        if (step.from !== undefined) expect(build, `stage ${step.from}`).toBeDefined();
        const buildDir = build ? workdirOf(build.steps) : "/";
        const destIsDir = step.dest.endsWith("/") || step.sources.length > 1;
        for (const source of step.sources) {
          // The build stage lays the repository out under its WORKDIR, so its paths are ours.
          const relative = build ? posix.relative(buildDir, posix.resolve(buildDir, source)) : source;
          expect(relative.startsWith(".."), `${source} lies under the build stage's WORKDIR`).toBe(false);
          const host = join(ROOT, relative);
          const target = statSync(host).isDirectory() || !destIsDir ? inImage(step.dest) : join(inImage(step.dest), basename(source));
          cpSync(host, target, { recursive: true });
        }
        break;
      }
      case "RUN":
        for (const command of args.split("&&").map((c) => c.trim())) {
          if (!command.startsWith("npm ci")) {
            image.skipped.push(command);
            continue;
          }
          // The registry is reachable; the local cache keeps this quick.
          await run("npm", [...command.split(/\s+/).slice(1), "--prefer-offline"], { cwd: inImage("."), timeout: 50_000 });
        }
        break;
      case "ENTRYPOINT":
        image.entrypoint = JSON.parse(args) as string[];
        break;
      case "CMD":
        image.cmd = JSON.parse(args) as string[];
        break;
      case "HEALTHCHECK":
        image.healthcheck = JSON.parse(args.slice(args.indexOf("CMD ") + 4)) as string[];
        break;
    }
  }
  return image;
}

const hasTini = spawnSync("tini", ["--version"]).status === 0;

/** The ENTRYPOINT as a host command: image paths under `root`, `node` this node. */
function entrypointCommand(image: Image): string[] {
  const nodeAt = image.entrypoint.indexOf("node");
  expect(nodeAt, "ENTRYPOINT runs node").toBeGreaterThan(0);
  const init = image.entrypoint.slice(0, nodeAt);
  const script = join(image.root, image.entrypoint[nodeAt + 1]!);
  return [...(hasTini ? init : []), process.execPath, script, ...image.entrypoint.slice(nodeAt + 2)];
}

/**
 * The environment of the container: the image's ENV plus what the deployment passes. (Here tini is
 * not PID 1, so it registers as a subreaper instead, or it warns.)
 */
const containerEnv = (image: Image, extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: tmpdir(),
  ...(hasTini ? { TINI_SUBREAPER: "1" } : {}),
  ...image.env,
  ...extra,
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

/** Every file under `dir` with its size and mtime, to see that a run wrote nothing there. */
function fingerprint(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => {
      const path = join(e.parentPath, e.name);
      const s = statSync(path);
      return `${path} ${s.size} ${s.mtimeMs}`;
    })
    .sort();
}

let image: Image;
let app: string;

beforeAll(async () => {
  image = await replayRuntimeStage(mkdtempSync(join(tmpdir(), "pgferry-image-")));
  app = join(image.root, image.workdir);
}, 60_000);
afterAll(() => {
  if (image) rmSync(image.root, { recursive: true, force: true });
});

describe("the image's runtime stage, replayed outside Docker", () => {
  it("holds exactly the copied files and production dependencies only", () => {
    expect(readdirSync(app).sort()).toEqual(["config", "dist", "node_modules", "package-lock.json", "package.json"]);
    expect(image.skipped.join(" ")).toMatch(/apt-get install .*tini/);
    const modules = join(app, "node_modules");
    for (const dependency of ["pg", "pg-copy-streams", "p-queue", "yaml", "zod", "prom-client", "pino", "pino-pretty"]) {
      expect(existsSync(join(modules, dependency, "package.json")), dependency).toBe(true);
    }
    for (const dev of ["vitest", "typescript", "eslint", "@types/node", "testcontainers"]) {
      expect(existsSync(join(modules, dev)), `${dev} (a dev dependency)`).toBe(false);
    }
    // Nothing leaks in from outside the image's /app either.
    const requireFromBin = createRequire(join(image.root, image.entrypoint.at(-1)!));
    expect(requireFromBin.resolve("pg").startsWith(modules)).toBe(true);
    expect(() => requireFromBin.resolve("vitest")).toThrow();
  });

  it("answers --version with package.json's version", async () => {
    const [command, ...args] = entrypointCommand(image);
    const { stdout } = await run(command!, [...args, "--version"], { cwd: app, env: containerEnv(image) });
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(stdout.trim()).toBe(version);
  });

  it("runs the Compose config and seed: snapshot, streaming, health, then SIGTERM exits 0", async () => {
    // The config at the path CMD names, as Compose and Kubernetes mount it.
    const configPath = image.cmd[image.cmd.indexOf("--config") + 1]!;
    const configFile = join(image.root, configPath);
    mkdirSync(join(configFile, ".."), { recursive: true });
    cpSync(join(COMPOSE, "pgferry.yaml"), configFile);

    let db: TestDatabases | undefined;
    let child: ChildProcess | undefined;
    const output: string[] = [];
    try {
      db = await createTestDatabases("image");
      await db.source.query(readFileSync(join(COMPOSE, "source/10-sample-project.sql"), "utf8"));
      await db.target.query(readFileSync(join(COMPOSE, "target/10-domain-schemas.sql"), "utf8"));

      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env = containerEnv(image, {
        SOURCE_URL: db.sourceUrl,
        TARGET_URL: db.targetUrl,
        PGFERRY_ADMIN_TOKEN: randomBytes(16).toString("hex"),
        PGFERRY_LISTEN: `127.0.0.1:${port}`, // loopback here; the Compose default is 0.0.0.0:9187
        PGFERRY_SLOT: `pgferry_image_${randomBytes(3).toString("hex")}`,
        PGFERRY_HEALTHCHECK_URL: `${base}/healthz`,
      });
      const [command, ...args] = [...entrypointCommand(image), ...image.cmd.map((arg) => (arg === configPath ? configFile : arg))];
      const started = spawn(command!, args, { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] });
      child = started;
      started.stdout.on("data", (d: Buffer) => output.push(d.toString("utf8")));
      started.stderr.on("data", (d: Buffer) => output.push(d.toString("utf8")));
      const exited = new Promise<number | null>((done) => started.on("exit", (code) => done(code)));
      // A wait ends early when pgferry exits.
      const whileRunning = <T>(wait: Promise<T>) =>
        Promise.race([wait, exited.then((code) => Promise.reject(new Error(`pgferry exited with code ${code}`)))]);
      const healthcheck = async () => {
        const [node, ...hcArgs] = image.healthcheck;
        expect(node).toBe("node");
        try {
          await run(process.execPath, hcArgs, { env, timeout: 10_000 });
          return 0;
        } catch (error) {
          return (error as { code?: number }).code ?? -1;
        }
      };

      await whileRunning(waitFor(() => fetch(`${base}/healthz`).then((r) => r.status), { description: "/healthz answering 200", until: (s) => s === 200 }));
      expect(await healthcheck()).toBe(0);
      const unchanged = fingerprint(app);

      // Snapshot: every seeded row, through the mapping (split, filter, derived columns).
      const count = async (pool: TestDatabases["source"], from: string) => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${from}`)).rows[0]!.n;
      const pairs: [string, string][] = [
        ["organizations", "shared_services.organizations"],
        ["users", "auth_gateway.users"],
        ["users WHERE deleted_at IS NULL", "shared_services.profiles"],
        ["api_keys", "security_service.api_keys"],
        ["memory_entries", "ai_chat.memory_entries"],
        ["payments", "billing.payments"],
      ];
      const expected = await Promise.all(pairs.map(([from]) => count(db!.source, from)));
      await whileRunning(waitFor(() => Promise.all(pairs.map(([, to]) => count(db!.target, to))), {
        description: "the snapshot in the target",
        until: (got) => got.every((n, i) => n === expected[i]),
      }));
      const cents = await db.source.query<{ s: string }>("SELECT sum((amount * 100)::bigint)::text AS s FROM payments");
      expect((await db.target.query<{ s: string }>("SELECT sum(amount_cents)::text AS s FROM billing.payments")).rows[0]?.s).toBe(cents.rows[0]?.s);

      // Streaming: a new user and a 1536-d embedding.
      const user = await db.source.query<{ id: string }>(
        "INSERT INTO users (organization_id, email, password_hash, display_name) VALUES (1, 'Image.Test@Example.com', 'x', 'Image Test') RETURNING id::text",
      );
      const vector = `[${Array.from({ length: 1536 }, (_, i) => ((i % 97) / 97).toFixed(4)).join(",")}]`;
      const memory = await db.source.query<{ embedding: string }>(
        "INSERT INTO memory_entries (user_id, content, embedding) VALUES ($1, 'streamed', $2::vector) RETURNING embedding::text",
        [user.rows[0]!.id, vector],
      );
      const streamed = await whileRunning(waitFor(
        async () => {
          const { rows } = await db!.target.query<{ email_normalized: string; role: string; embedding: string | null }>(
            `SELECT u.email_normalized, u.role, m.embedding::text AS embedding
             FROM auth_gateway.users u LEFT JOIN ai_chat.memory_entries m ON m.user_id = u.id AND m.content = 'streamed'
             WHERE u.id = $1`,
            [user.rows[0]!.id],
          );
          return rows[0];
        },
        { description: "the streamed rows in the target", until: (row) => row?.embedding != null },
      ));
      expect(streamed).toEqual({ email_normalized: "image.test@example.com", role: "member", embedding: memory.rows[0]!.embedding });
      await whileRunning(waitFor(() => fetch(`${base}/readyz`).then((r) => r.status), { description: "/readyz answering 200 once streaming", until: (s) => s === 200 }));

      // SIGTERM (to the init where there is one, as `docker stop` does) drains and exits 0.
      started.kill("SIGTERM");
      const code = await Promise.race([exited, sleep(20_000, "still running after 20 s", { ref: false })]);
      expect(code).toBe(0);
      child = undefined;
      expect(await healthcheck()).not.toBe(0);
      // Nothing was written under /app: Kubernetes mounts the root filesystem read-only.
      expect(fingerprint(app)).toEqual(unchanged);
    } catch (error) {
      if (error instanceof Error) error.message += `\n--- pgferry's output (tail) ---\n${output.join("").slice(-4000)}`;
      throw error;
    } finally {
      child?.kill("SIGKILL");
      await db?.drop();
    }
  }, 60_000);
});
