/**
 * Where a running daemon's control server really listens. With `control.listen` port 0 the system
 * picks a free port, which the config cannot tell `pgferry status` or `pgferry resync`: the daemon
 * records the address it got in a small file in the temporary directory, named after the pipeline
 * (target database, state schema, slot), and removes it when it stops. Only a file owned by the
 * same user whose daemon process is still alive is believed, so another local user cannot point
 * `status` (or `resync`, which sends the admin token) at a port of theirs.
 */
import { createHash } from "node:crypto";
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseListenAddress, type Config } from "../config/index.js";
import { describeUrl } from "../redact.js";

interface Recorded {
  pid: number;
  host: string;
  port: number;
}

/** The file for this config's pipeline: the same for the daemon and the CLI on one host. */
export function daemonAddressFile(config: Config, directory = tmpdir()): string {
  const identity = [describeUrl(config.target.url), config.target.stateSchema, config.source.slot, config.control.listen].join("\n");
  const key = createHash("sha256").update(identity).digest("hex").slice(0, 16);
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  return join(directory, `pgferry-${uid}-${key}.control.json`);
}

/** Whether `control.listen` leaves the port to the system (port 0). */
export function picksFreePort(config: Config): boolean {
  return parseListenAddress(config.control.listen)?.port === 0;
}

/**
 * Called by `pgferry run` once the control server listens on `port`: records it when the config
 * says port 0. Returns the function that removes the record (on stop). Best effort: a record that
 * cannot be written only means status falls back to reading the target.
 */
export function recordDaemonAddress(config: Config, port: number, directory?: string): () => void {
  const address = parseListenAddress(config.control.listen);
  if (!address || address.port !== 0) return () => undefined;
  const file = daemonAddressFile(config, directory);
  const record: Recorded = { pid: process.pid, host: address.host, port };
  try {
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    renameSync(temporary, file);
  } catch {
    return () => undefined;
  }
  return () => {
    try {
      const current = JSON.parse(readFileSync(file, "utf8")) as Partial<Recorded>;
      if (current.pid === process.pid) rmSync(file, { force: true });
    } catch {
      // gone already
    }
  };
}

/**
 * The `host:port` a daemon with this config recorded, if it is still running; undefined otherwise
 * (not port 0, no record, a record of a dead process or of another user).
 */
export function recordedDaemonListen(config: Config, directory?: string): string | undefined {
  if (!picksFreePort(config)) return undefined;
  const file = daemonAddressFile(config, directory);
  try {
    const stat = statSync(file);
    if (typeof process.getuid === "function" && stat.uid !== process.getuid()) return undefined;
    const record = JSON.parse(readFileSync(file, "utf8")) as Partial<Recorded>;
    if (typeof record.pid !== "number" || typeof record.host !== "string" || typeof record.port !== "number" || record.port <= 0) return undefined;
    if (!processAlive(record.pid)) return undefined;
    return `${record.host.includes(":") ? `[${record.host}]` : record.host}:${record.port}`;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, but another user's (the uid check above makes this rare).
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The listen address to reach the daemon at: the recorded one for port 0, else the configured one. */
export function daemonListen(config: Config): string {
  return recordedDaemonListen(config) ?? config.control.listen;
}
