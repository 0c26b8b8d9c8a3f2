/**
 * The control HTTP server (node:http): `/metrics`, `/healthz`, `/readyz`, `GET /v1/status`, the
 * status page at `/`, and the resync endpoints routed to an injected ResyncController. It takes
 * callbacks, not the pipeline, so it answers in every phase and is tested on its own.
 *
 * Mutating endpoints need `Authorization: Bearer <control.adminToken>`. Without a configured token
 * they are refused (403): an open POST on loopback could be triggered by any local process or by a
 * web page in a local browser.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { isLoopbackHost, type ListenAddress } from "../config/index.js";
import { PgferryError } from "../errors.js";
import { bearerMatches } from "./bearerToken.js";
import type { PipelineStatus, Readiness } from "./pipelineMonitor.js";
import { ResyncRunningError, UnknownTableError, type ResyncController } from "./resyncController.js";
import { renderStatusPage } from "./statusPage.js";

export interface ControlServerOptions {
  listen: ListenAddress;
  adminToken: string | undefined;
  log: Logger;
  status(): PipelineStatus;
  readiness(): Readiness;
  registry: Registry;
  resyncs?: ResyncController;
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void> | void;

interface Route {
  method: "GET" | "POST";
  path: RegExp;
  mutating?: boolean;
  handle: Handler;
}

/** How long requests in flight may finish when the server stops. */
const STOP_GRACE_MS = 2_000;

const HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff" };

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...HEADERS, "content-type": contentType, "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  send(res, status, "application/json; charset=utf-8", `${JSON.stringify(body, null, 2)}\n`, headers);
}

export class ControlServer {
  private readonly server: Server;
  private readonly routes: Route[];
  private listening: Promise<AddressInfo> | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ControlServerOptions) {
    this.routes = [
      { method: "GET", path: /^\/$/, handle: (_req, res) => this.page(res) },
      { method: "GET", path: /^\/healthz$/, handle: (_req, res) => json(res, 200, { status: "alive" }) },
      { method: "GET", path: /^\/readyz$/, handle: (_req, res) => this.ready(res) },
      { method: "GET", path: /^\/metrics$/, handle: (_req, res) => this.metrics(res) },
      { method: "GET", path: /^\/v1\/status$/, handle: (_req, res) => json(res, 200, this.options.status()) },
      { method: "POST", path: /^\/v1\/tables\/([^/]+)\/resync$/, mutating: true, handle: (_req, res, [table]) => this.startResync(res, table ?? "") },
      { method: "GET", path: /^\/v1\/resyncs\/([^/]+)$/, handle: (_req, res, [id]) => this.getResync(res, id ?? "") },
    ];
    this.server = createServer((req, res) => {
      void this.dispatch(req, res);
    });
  }

  /** Starts listening; refuses a non-loopback address without an admin token. Safe to call twice. */
  start(): Promise<AddressInfo> {
    this.listening ??= this.listen();
    return this.listening;
  }

  /** Stops accepting connections, closes idle ones, and cuts the rest after a short grace. Safe to call twice. */
  stop(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.closing ??= this.listening.then(
      () =>
        new Promise<void>((resolve) => {
          const force = setTimeout(() => this.server.closeAllConnections(), STOP_GRACE_MS);
          this.server.close(() => {
            clearTimeout(force);
            resolve();
          });
          this.server.closeIdleConnections();
        }),
      () => undefined, // never listened
    );
    return this.closing;
  }

  private async listen(): Promise<AddressInfo> {
    const { host, port } = this.options.listen;
    // The config checks this too; the server holds the line itself.
    if (!isLoopbackHost(host) && !this.options.adminToken) {
      throw new PgferryError("config", `control.listen ${host}:${port} is not a loopback address and control.adminToken is not set`, {
        hint: "set control.adminToken (from an ${ENV} reference) or listen on 127.0.0.1",
      });
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        reject(
          new PgferryError("config", `control server cannot listen on ${host}:${port}: ${error.code ?? error.message}`, {
            cause: error,
            hint: "another process holds the port, or the address is not on this machine; change control.listen",
          }),
        );
      };
      this.server.once("error", onError);
      this.server.listen(port, host, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.options.log.info({ address: `${address.address}:${address.port}` }, "control server listening");
    return address;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume(); // no endpoint reads a body
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const method = req.method === "HEAD" ? "GET" : req.method;
    try {
      const matching = this.routes.filter((r) => r.path.test(path));
      if (matching.length === 0) return json(res, 404, { error: `no such endpoint: ${path}` });
      const route = matching.find((r) => r.method === method);
      if (!route) return json(res, 405, { error: `${req.method} not allowed on ${path}` }, { allow: [...new Set(matching.map((r) => r.method))].join(", ") });
      const params = (route.path.exec(path) ?? []).slice(1).map((p) => decodeURIComponent(p));
      if (route.mutating && !this.authorized(req, res)) return;
      await route.handle(req, res, params);
    } catch (error) {
      if (error instanceof URIError) return json(res, 400, { error: "malformed percent-encoding in the path" });
      this.options.log.error({ err: error, path }, "control request failed");
      if (!res.headersSent) json(res, 500, { error: (error as Error).message });
    }
  }

  private authorized(req: IncomingMessage, res: ServerResponse): boolean {
    const token = this.options.adminToken;
    if (token === undefined) {
      json(res, 403, { error: "mutating endpoints are disabled: control.adminToken is not set" });
      return false;
    }
    if (!bearerMatches(req.headers.authorization, token)) {
      json(res, 401, { error: "missing or wrong bearer token (Authorization: Bearer <control.adminToken>)" }, { "www-authenticate": 'Bearer realm="pgferry"' });
      return false;
    }
    return true;
  }

  private ready(res: ServerResponse): void {
    const readiness = this.options.readiness();
    json(res, readiness.ready ? 200 : 503, readiness);
  }

  private async metrics(res: ServerResponse): Promise<void> {
    const { registry } = this.options;
    send(res, 200, registry.contentType, await registry.metrics());
  }

  private page(res: ServerResponse): void {
    const nonce = randomBytes(16).toString("base64");
    send(res, 200, "text/html; charset=utf-8", renderStatusPage(this.options.status(), nonce), {
      "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`,
      "referrer-policy": "no-referrer",
    });
  }

  private async startResync(res: ServerResponse, table: string): Promise<void> {
    const resyncs = this.options.resyncs;
    if (!resyncs) return json(res, 501, { error: "per-table resync is not available in this pgferry build (no resync engine)" });
    try {
      const { id } = await resyncs.start(table);
      this.options.log.info({ table, id }, "resync requested through the control API");
      json(res, 202, { id, table, status: `/v1/resyncs/${encodeURIComponent(id)}` }, { location: `/v1/resyncs/${encodeURIComponent(id)}` });
    } catch (error) {
      if (error instanceof UnknownTableError) return json(res, 404, { error: error.message, table });
      if (error instanceof ResyncRunningError) return json(res, 409, { error: error.message, table, id: error.id });
      // The engine's own refusals (not streaming yet, a table without a key) are conflicts with its state.
      if (error instanceof PgferryError) return json(res, 409, { error: error.message, table, hint: error.hint });
      throw error;
    }
  }

  private async getResync(res: ServerResponse, id: string): Promise<void> {
    const resyncs = this.options.resyncs;
    if (!resyncs) return json(res, 501, { error: "per-table resync is not available in this pgferry build (no resync engine)" });
    const info = await resyncs.get(id);
    if (!info) return json(res, 404, { error: `no resync with id ${id}` });
    json(res, 200, info);
  }
}
