/**
 * Throwaway TLS material for tests: a self-signed CA, a server certificate it signs (SANs for the
 * given DNS names and IP addresses), and a second, unrelated CA to test that verification fails.
 * Made with the `openssl` command line. The directory and the server key belong to the `postgres` OS
 * user when we are root (the server refuses a key that is not its own with mode 0600).
 */
import { execFile, spawnSync } from "node:child_process";
import { chmod, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface TestCertificates {
  dir: string;
  /** The CA that signed the server certificate: what clients pass as `sslrootcert`. */
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  /** A CA that signed nothing the server presents: verification against it must fail. */
  otherCaFile: string;
  destroy(): Promise<void>;
}

export interface CertificateOptions {
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

/** Fails with what to install when `openssl` is missing, instead of a bare ENOENT later. */
export function requireOpenssl(): void {
  const probe = spawnSync("openssl", ["version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      "the TLS tests need the `openssl` command line to make certificates, and it is not on PATH " +
        "(Debian/Ubuntu: apt-get install -y openssl)",
    );
  }
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd: dir, timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args[0]} failed: ${(error as Error).message}\n${stderr}`, { cause: error });
  }
}

/** A self-signed CA certificate and its key (P-256: fast to generate). */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, [
    "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
    "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=pgferry test ${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

/** The `postgres` OS user's ids when we are root (server files must be its own), else undefined. */
export function postgresOwner(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) throw new Error("running as root, but there is no `postgres` OS user to own the server key");
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export async function createTestCertificates(options: CertificateOptions): Promise<TestCertificates> {
  requireOpenssl();
  const dir = await mkdtemp(join(tmpdir(), "pgferry-tls-"));
  const destroy = () => rm(dir, { recursive: true, force: true });
  try {
    await makeCa(dir, "ca");
    await makeCa(dir, "other-ca");
    const san = [...options.dnsNames.map((n) => `DNS:${n}`), ...options.ipAddresses.map((ip) => `IP:${ip}`)].join(",");
    await writeFile(
      join(dir, "server.ext"),
      `subjectAltName=${san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`,
    );
    await openssl(dir, [
      "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
      "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${options.dnsNames[0] ?? options.ipAddresses[0] ?? "localhost"}`,
    ]);
    await openssl(dir, [
      "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
    ]);
    const serverKeyFile = join(dir, "server.key");
    await chmod(serverKeyFile, 0o600);
    const ids = postgresOwner();
    if (ids) {
      await chown(dir, ids.uid, ids.gid);
      for (const file of ["server.key", "server.crt", "ca.pem"]) await chown(join(dir, file), ids.uid, ids.gid);
    }
    return {
      dir,
      caFile: join(dir, "ca.pem"),
      serverCertFile: join(dir, "server.crt"),
      serverKeyFile,
      otherCaFile: join(dir, "other-ca.pem"),
      destroy,
    };
  } catch (error) {
    await destroy().catch(() => undefined);
    throw error;
  }
}
