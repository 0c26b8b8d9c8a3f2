/**
 * Masks secrets inside free text (log messages, driver errors) and describes connection URLs
 * without their secrets. Everything here scans linearly: it runs on every log line, and a
 * backtracking regex over a long error message would stall the daemon.
 */

const MASK = "***";

/** Characters that end the authority part of a URL when scanning forward from `://`. */
const AUTHORITY_END = new Set(["/", " ", "\t", "\n", "\r", '"', "'", "`", "<", ">"]);
/**
 * Characters that end an unquoted `password=` value or bearer token. Only whitespace and quotes, as
 * in libpq: a password may contain `,` `)` or `&`, and masking too much is the safe side.
 */
const VALUE_END = new Set([" ", "\t", "\n", "\r", '"', "'", "`"]);

// Cheap pre-check so the common line without any secret costs one scan.
const MAYBE_SECRET = /:\/\/|password|bearer/i;
// Both start with a literal, so a failed match costs O(1) per position. The keyword form is libpq's
// `password=secret` / `password = 'a b'` (and so also `PGPASSWORD=secret`).
const PASSWORD_KEYWORD = /password[ \t]*=[ \t]*/gi;
const BEARER = /\bbearer[ \t]+/gi;

/** Masks URL userinfo passwords, libpq `password=...` values and `Bearer` tokens in `text`. */
export function redactSecrets(text: string): string {
  if (!MAYBE_SECRET.test(text)) return text;
  return maskValuesAfter(maskValuesAfter(maskUrlPasswords(text), PASSWORD_KEYWORD), BEARER);
}

/** `scheme://user:secret@host` → `scheme://user:***@host`, for any scheme. */
function maskUrlPasswords(text: string): string {
  let out = "";
  let copied = 0;
  let from = 0;
  for (;;) {
    const start = text.indexOf("://", from);
    if (start < 0) break;
    const authorityStart = start + 3;
    // The last '@' separates userinfo from host, as in WHATWG URL parsing, so a raw '@' inside a
    // password stays masked; the first ':' before it ends the user name.
    let end = authorityStart;
    let at = -1;
    let colon = -1;
    for (; end < text.length; end += 1) {
      const c = text[end]!;
      if (AUTHORITY_END.has(c)) break;
      if (c === "@") at = end;
      else if (c === ":" && at < 0 && colon < 0) colon = end;
    }
    if (at >= 0 && colon >= 0 && colon + 1 < at) {
      out += text.slice(copied, colon + 1) + MASK;
      copied = at;
    }
    // Resume after this authority so a pathological run of "://" stays linear.
    from = Math.max(end, authorityStart);
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** Masks the value after each match of `prefix` (a global regex): a quoted or a bare word. */
function maskValuesAfter(text: string, pattern: RegExp): string {
  const prefix = new RegExp(pattern); // own copy: lastIndex is per-scan state
  let out = "";
  let copied = 0;
  for (let match = prefix.exec(text); match !== null; match = prefix.exec(text)) {
    const valueStart = match.index + match[0].length;
    const quoted = text[valueStart] === "'";
    const end = quoted ? quotedValueEnd(text, valueStart) : wordEnd(text, valueStart);
    const mask = quoted ? `'${MASK}'` : MASK;
    const value = text.slice(valueStart, end);
    // Skip empty values and ones already masked, so redacting twice changes nothing.
    if (value !== "" && value !== mask) {
      out += text.slice(copied, valueStart) + mask;
      copied = end;
    }
    prefix.lastIndex = Math.max(end, match.index + 1);
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** End of an unquoted value: the next whitespace or quote. */
function wordEnd(text: string, start: number): number {
  let i = start;
  while (i < text.length && !VALUE_END.has(text[i]!)) i += 1;
  return i;
}

/** End (exclusive, after the closing quote) of a libpq single-quoted value with `\'` escapes. */
function quotedValueEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    if (text[i] === "\\") i += 2;
    else if (text[i] === "'") return i + 1;
    else i += 1;
  }
  return text.length;
}

/**
 * A connection URL as it may be logged: scheme, user, host, port and database; never the password
 * or query parameters (which may carry `password=` or `sslkey=`).
 */
export function describeUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "(unparsable connection URL)";
  }
  const user = parsed.username === "" ? "" : `${parsed.username}@`;
  return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
}
