/**
 * A TCP proxy on loopback between pgferry and a database that injects faults: it can reset every
 * open connection, stall them (stop forwarding for a while), or drop new ones. Tests point pgferry's
 * URLs at `proxy.port` and call the fault methods at chosen moments.
 */
import { createServer, createConnection, type Server, type Socket } from "node:net";

export interface FaultProxy {
  port: number;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** Destroys every open connection at once (both sides see a reset). */
  resetAll(): number;
  /** Stops forwarding data on every open connection for `ms`, then resumes. */
  stallAll(ms: number): Promise<void>;
  /** Refuses (closes immediately) new connections while true. */
  refuseNew(refuse: boolean): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<FaultProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ port: targetPort, host: targetHost });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    get open() {
      return pairs.size;
    },
    resetAll() {
      const n = pairs.size;
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
      return n;
    },
    async stallAll(ms) {
      const stalled = [...pairs];
      for (const [a, b] of stalled) {
        a.pause();
        b.pause();
      }
      await new Promise((resolve) => setTimeout(resolve, ms));
      for (const [a, b] of stalled) {
        a.resume();
        b.resume();
      }
    },
    refuseNew(refuse) {
      refusing = refuse;
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
