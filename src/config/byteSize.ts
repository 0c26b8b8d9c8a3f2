/**
 * config/ — the YAML config: `${VAR}` interpolation, the zod schema with its defaults, and problems reported by key path (index.ts loads it).
 *
 * Byte sizes as written in the config: a number of bytes, or a string such as `512KiB`, `16MiB`,
 * `1GiB` or `10MB` (SI units are powers of 1000, IEC units powers of 1024, as their names say).
 */

const UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
  TIB: 1024 ** 4,
};
const UNIT_NAMES = "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB";
// No nested or adjacent overlapping quantifiers: linear on any input.
const SIZE = /^(\d+(?:\.\d+)?)[ \t]*([A-Za-z]*)$/;

export type ByteSizeResult = { ok: true; bytes: number } | { ok: false; reason: string };

export function parseByteSize(value: unknown): ByteSizeResult {
  if (typeof value === "number") return checkBytes(value);
  if (typeof value !== "string") return { ok: false, reason: `expected a size such as 16MiB or a number of bytes, got ${describeType(value)}` };
  const match = SIZE.exec(value.trim());
  if (!match) return { ok: false, reason: "expected a size such as 16MiB, 512KiB or a number of bytes" };
  const unit = match[2] === "" ? "B" : match[2]!;
  // Case-insensitive (`mib`, `Kb`): nobody configures a queue in bits.
  const factor = UNITS[unit.toUpperCase()];
  if (factor === undefined) return { ok: false, reason: `unknown unit "${unit}"; use ${UNIT_NAMES}` };
  return checkBytes(Math.floor(Number(match[1]) * factor));
}

function checkBytes(bytes: number): ByteSizeResult {
  if (!Number.isSafeInteger(bytes)) return { ok: false, reason: "expected a whole number of bytes" };
  if (bytes < 1) return { ok: false, reason: "must be at least 1 byte" };
  return { ok: true, bytes };
}

/** A value's type in words, for messages that must not quote the value itself. */
export function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return Number.isFinite(value) ? String(value) : "a number";
    case "boolean":
      return value ? "true" : "false";
    case "object":
      return "a mapping";
    default:
      return typeof value;
  }
}

const BYTE_UNITS = {
  binary: { step: 1024, names: ["B", "KiB", "MiB", "GiB", "TiB"] },
  decimal: { step: 1000, names: ["B", "kB", "MB", "GB", "TB"] },
};

/** `12.3 MiB` (binary units, the status page and CLI) or `12.9 MB` (decimal, the demo's view). */
export function formatBytes(bytes: number | null, units: keyof typeof BYTE_UNITS = "binary"): string {
  if (bytes === null || !Number.isFinite(bytes)) return "–";
  const { step, names } = BYTE_UNITS[units];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= step && unit < names.length - 1) {
    value /= step;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${names[unit]}`;
}
