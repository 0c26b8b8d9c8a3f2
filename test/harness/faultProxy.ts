/**
 * A TCP proxy on loopback between pgferry and a database that injects faults: it can reset every
 * open connection, stall them (stop forwarding for a while), drop new ones, or close its port
 * altogether (connections are then refused, as by a server that is down) and open it again later.
 * Tests point pgferry's URLs at `proxy.port` and call the fault methods at chosen moments.
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
  /**
   * Stops listening and resets every open connection: connecting then fails with ECONNREFUSED, as
   * when the database is down. Resolves with the number of connections reset.
   */
  closePort(): Promise<number>;
  /** Listens again on the same port after closePort(). */
  reopenPort(): Promise<void>;
  /** Whether the port is open (not closed by closePort()). */
  readonly listening: boolean;
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
  const resetAll = () => {
    const n = pairs.size;
    for (const [a, b] of [...pairs]) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
    return n;
  };
  return {
    port,
    get open() {
      return pairs.size;
    },
    get listening() {
      return server.listening;
    },
    resetAll,
    async closePort() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const n = resetAll();
      await closed;
      return n;
    },
    async reopenPort() {
      if (server.listening) return;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => {
          server.off("error", reject);
          resolve();
        });
      });
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
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
