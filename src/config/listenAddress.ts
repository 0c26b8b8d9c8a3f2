/** `control.listen`: `host:port`, with IPv6 hosts in brackets (`[::1]:9187`). */

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `host:port`; undefined when it is not one. */
export function parseListenAddress(text: string): ListenAddress | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return undefined; // an unbracketed IPv6 address is ambiguous
  }
  if (host === "" || /\s/.test(host) || !/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  // Port 0 lets the system pick a free port (tests, several pipelines on one host without a scrape target).
  if (port > 65535) return undefined;
  return { host, port };
}

/**
 * Whether only this machine can reach `host`. Anything else (including `0.0.0.0` and host names)
 * may be reachable from the network, so the control API then requires a token.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
