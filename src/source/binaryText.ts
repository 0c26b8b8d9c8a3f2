/**
 * PostgreSQL's text output of a value sent in a type's binary send format, for the built-in types
 * pgferry may have to read in a binary stream (pgoutput `binary 'true'`): keys, filter and SQL inputs,
 * hook rows. The text is exactly what the server prints in pgferry's sessions (sql/session.ts: DateStyle
 * ISO, TimeZone UTC), so a value read from the binary stream and the same value read by a SELECT (a
 * resync, a re-read of unchanged TOAST) are the same string. A type without a function here is never
 * read from a binary stream: the stream stays text (pipeline/streamFormat.ts).
 * test/integration/binaryText.test.ts compares every function with the server's own output.
 */

type BinaryToText = (value: Buffer) => string;

const POSTGRES_EPOCH_DAYS = 10_957; // 2000-01-01 − 1970-01-01, in days
const MICROS_PER_DAY = 86_400_000_000n;
const INT64_MAX = 0x7fffffffffffffffn;
const INT64_MIN = -0x8000000000000000n;
const INT32_MAX = 0x7fffffff;
const INT32_MIN = -0x80000000;

function expectLength(value: Buffer, length: number, type: string): void {
  if (value.length !== length) throw new RangeError(`a binary ${type} has ${length} bytes, this one ${value.length}`);
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");

/**
 * Proleptic Gregorian date of a day number counted from 1970-01-01, as `YYYY-MM-DD` with ` BC` for
 * years before 1 (PostgreSQL has no year 0: year 0 is 1 BC). Civil-from-days (Howard Hinnant's
 * algorithm), in integers, so it holds over PostgreSQL's whole range.
 */
function civilDate(daysSince1970: number): { date: string; bc: boolean } {
  const z = daysSince1970 + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const bc = year <= 0;
  return { date: `${pad(bc ? 1 - year : year, 4)}-${pad(month, 2)}-${pad(day, 2)}`, bc };
}

/** `HH:MM:SS[.ffffff]` of the microseconds into a day, trailing zeros of the fraction dropped as PostgreSQL does. */
function timeOfDay(micros: number): string {
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = micros % 1_000_000;
  const text = `${pad(Math.floor(seconds / 3600), 2)}:${pad(Math.floor(seconds / 60) % 60, 2)}:${pad(seconds % 60, 2)}`;
  return fraction === 0 ? text : `${text}.${pad(fraction, 6).replace(/0+$/, "")}`;
}

/** An int64 of microseconds since 2000-01-01 00:00 as ISO text; `zone` follows the time (`+00` for timestamptz in UTC). */
function timestampText(value: Buffer, zone: string): string {
  expectLength(value, 8, "timestamp");
  const micros = value.readBigInt64BE(0);
  if (micros === INT64_MAX) return "infinity";
  if (micros === INT64_MIN) return "-infinity";
  let days = micros / MICROS_PER_DAY;
  let rest = micros % MICROS_PER_DAY;
  if (rest < 0n) {
    rest += MICROS_PER_DAY;
    days -= 1n;
  }
  const { date, bc } = civilDate(Number(days) + POSTGRES_EPOCH_DAYS);
  return `${date} ${timeOfDay(Number(rest))}${zone}${bc ? " BC" : ""}`;
}

function dateText(value: Buffer): string {
  expectLength(value, 4, "date");
  const days = value.readInt32BE(0);
  if (days === INT32_MAX) return "infinity";
  if (days === INT32_MIN) return "-infinity";
  const { date, bc } = civilDate(days + POSTGRES_EPOCH_DAYS);
  return bc ? `${date} BC` : date;
}

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

/** numeric_send: ndigits, weight, sign, dscale (int16 each), then ndigits base-10000 digits, most significant first. */
function numericText(value: Buffer): string {
  if (value.length < 8) throw new RangeError(`a binary numeric has at least 8 bytes, this one ${value.length}`);
  const ndigits = value.readInt16BE(0);
  const weight = value.readInt16BE(2);
  const sign = value.readUInt16BE(4);
  const dscale = value.readInt16BE(6);
  expectLength(value, 8 + 2 * ndigits, "numeric");
  if (sign === NUMERIC_NAN) return "NaN";
  if (sign === NUMERIC_PINF) return "Infinity";
  if (sign === NUMERIC_NINF) return "-Infinity";
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) throw new RangeError(`unknown numeric sign 0x${sign.toString(16)}`);
  const digit = (i: number) => (i >= 0 && i < ndigits ? value.readInt16BE(8 + 2 * i) : 0);
  // The integer part: base-10000 digits 0..weight, the first without leading zeros.
  let integer = "";
  for (let i = 0; i <= weight; i += 1) integer += i === 0 ? String(digit(i)) : pad(digit(i), 4);
  if (integer === "") integer = "0";
  let text = sign === NUMERIC_NEG ? `-${integer}` : integer;
  if (dscale > 0) {
    let fraction = "";
    for (let i = weight + 1; fraction.length < dscale; i += 1) fraction += pad(digit(i), 4);
    text += `.${fraction.slice(0, dscale)}`;
  }
  return text;
}

function uuidText(value: Buffer): string {
  expectLength(value, 16, "uuid");
  const hex = value.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A finite non-zero float's magnitude as m × 2^e exactly (m a positive integer), and the gap below
 * it in the same units: half the gap above when m is the smallest significand of a normal binade
 * above the lowest (just above a power of two).
 */
interface BinaryFloat {
  m: bigint;
  e: number;
  halfGapBelow: boolean;
}

function binaryFloat(magnitude: number, single: boolean): BinaryFloat {
  const view = new DataView(new ArrayBuffer(8));
  const [fractionBits, bias] = single ? [23, 150] : [52, 1075];
  let bits: bigint;
  if (single) {
    view.setFloat32(0, magnitude);
    bits = BigInt(view.getUint32(0));
  } else {
    view.setFloat64(0, magnitude);
    bits = view.getBigUint64(0);
  }
  const exponent = Number(bits >> BigInt(fractionBits));
  const fraction = bits & ((1n << BigInt(fractionBits)) - 1n);
  if (exponent === 0) return { m: fraction, e: 1 - bias, halfGapBelow: false };
  return { m: (1n << BigInt(fractionBits)) | fraction, e: exponent - bias, halfGapBelow: fraction === 0n && exponent > 1 };
}

/** A positive decimal as its digits (no leading zero) times 10^k, from toExponential's `d.ddde±x`. */
interface Decimal {
  digits: string;
  k: number;
}

function decimal(exponential: string): Decimal {
  const [mantissa, exponent] = exponential.split("e") as [string, string];
  const digits = mantissa.replace(".", "");
  return { digits, k: Number(exponent) - (digits.length - 1) };
}

/** Whether D × 10^k equals M × 2^j exactly. */
function decimalEqualsBinary(d: bigint, k: number, mm: bigint, j: number): boolean {
  const left = d * 10n ** BigInt(Math.max(k, 0)) * 2n ** BigInt(Math.max(-j, 0));
  const right = mm * 2n ** BigInt(Math.max(j, 0)) * 10n ** BigInt(Math.max(-k, 0));
  return left === right;
}

/**
 * Whether `candidate` lies exactly halfway between the float and a neighbour: it reads back to the
 * float under round-half-even, but PostgreSQL's shortest-digits printer (Ryu, boundaries excluded)
 * does not take such a representation.
 */
function onBoundary({ digits, k }: Decimal, { m, e, halfGapBelow }: BinaryFloat): boolean {
  const d = BigInt(digits);
  if (decimalEqualsBinary(d, k, 2n * m + 1n, e - 1)) return true;
  return halfGapBelow ? decimalEqualsBinary(d, k, 4n * m - 1n, e - 2) : decimalEqualsBinary(d, k, 2n * m - 1n, e - 1);
}

/**
 * toExponential rounds a float exactly halfway between two candidates up; the server's printer
 * rounds it to the even last digit: `candidate` one unit lower in its last digit when the float lies
 * exactly halfway below it and that digit is odd.
 */
function halfToEven(candidate: Decimal, { m, e }: BinaryFloat): Decimal {
  const d = BigInt(candidate.digits);
  if (d % 2n === 0n || !decimalEqualsBinary(2n * d - 1n, candidate.k, m, e + 1)) return candidate;
  const lower = String(d - 1n);
  return lower.length === candidate.digits.length ? { digits: lower, k: candidate.k } : candidate;
}

/**
 * float4out / float8out with extra_float_digits > 0 (pgferry pins 3): the fewest digits that read
 * back to the same value, none of them exactly halfway to a neighbour (PostgreSQL's Ryu excludes the
 * boundaries; JavaScript's shortest digits may sit on one), fixed-point when the decimal exponent is
 * in [-4, 15) (float8) or [-4, 6) (float4), else `d.ddde±XX`; `-0`, `NaN`, `Infinity`, `-Infinity`.
 */
function floatText(value: number, single: boolean): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const magnitude = Math.abs(value);
  const parts = binaryFloat(magnitude, single);
  const readsBack = ({ digits, k }: Decimal) => {
    const read = Number(`${digits}e${k}`);
    return (single ? Math.fround(read) : read) === magnitude;
  };
  const maxDigits = single ? 9 : 17;
  let shortest = decimal(magnitude.toExponential(maxDigits - 1));
  for (let n = 1; n <= maxDigits; n += 1) {
    const candidate = halfToEven(decimal(magnitude.toExponential(n - 1)), parts);
    if (readsBack(candidate) && !onBoundary(candidate, parts)) {
      shortest = candidate;
      break;
    }
  }
  const digits = shortest.digits.replace(/0+$/, "") || "0";
  const exponent = shortest.k + shortest.digits.length - 1;
  let text: string;
  if (exponent >= -4 && exponent < (single ? 6 : 15)) {
    if (exponent < 0) text = `0.${"0".repeat(-exponent - 1)}${digits}`;
    else if (digits.length <= exponent + 1) text = digits + "0".repeat(exponent + 1 - digits.length);
    else text = `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
  } else {
    text = `${digits[0]!}${digits.length > 1 ? `.${digits.slice(1)}` : ""}e${exponent < 0 ? "-" : "+"}${pad(Math.abs(exponent), 2)}`;
  }
  return value < 0 ? `-${text}` : text;
}

const utf8: BinaryToText = (value) => value.toString("utf8");

function fixed(length: number, type: string, read: (value: Buffer) => string): BinaryToText {
  return (value) => {
    expectLength(value, length, type);
    return read(value);
  };
}

/** By type OID (fixed for built-in types in every cluster). */
const CODECS = new Map<number, BinaryToText>([
  [16, fixed(1, "boolean", (v) => (v[0] === 0 ? "f" : "t"))],
  [20, fixed(8, "bigint", (v) => v.readBigInt64BE(0).toString())],
  [21, fixed(2, "smallint", (v) => String(v.readInt16BE(0)))],
  [23, fixed(4, "integer", (v) => String(v.readInt32BE(0)))],
  [26, fixed(4, "oid", (v) => String(v.readUInt32BE(0)))],
  [700, fixed(4, "real", (v) => floatText(v.readFloatBE(0), true))],
  [701, fixed(8, "double precision", (v) => floatText(v.readDoubleBE(0), false))],
  [17, (v) => `\\x${v.toString("hex")}`], // bytea, as bytea_output = hex (pinned) prints it
  [19, utf8], // name
  [25, utf8], // text
  [1042, utf8], // character (bpchar_send sends the padded value, as bpcharout prints it)
  [1043, utf8], // character varying
  [114, utf8], // json
  [
    3802, // jsonb: a version byte (1), then the text jsonb_out prints
    (v) => {
      if (v[0] !== 1) throw new RangeError(`unsupported jsonb binary version ${v[0]}`);
      return v.toString("utf8", 1);
    },
  ],
  [2950, uuidText],
  [1082, dateText],
  [1114, (v) => timestampText(v, "")],
  [1184, (v) => timestampText(v, "+00")],
  [1700, numericText],
]);

/** Array type OID → element type OID, for the element types above. */
const ARRAYS = new Map<number, number>([
  [1000, 16], [1016, 20], [1005, 21], [1007, 23], [1028, 26], [1003, 19], [1009, 25], [1014, 1042], [1015, 1043],
  [199, 114], [3807, 3802], [2951, 2950], [1182, 1082], [1115, 1114], [1185, 1184], [1231, 1700], [1021, 700], [1022, 701], [1001, 17],
]);

/**
 * array_out of an array_send value: `{a,b}` nested per dimension, `[lo:hi]...=` ahead when a lower
 * bound is not 1, an element in double quotes (with `"` and `\` escaped) when it is empty, is `NULL`
 * in any case, or holds a brace, comma, quote, backslash or white space.
 */
function arrayText(elementOid: number, printElement: BinaryToText): BinaryToText {
  return (value) => {
    const ndim = value.readInt32BE(0);
    const flags = value.readInt32BE(4);
    const elementType = value.readUInt32BE(8);
    if ((flags & ~1) !== 0 || elementType !== elementOid || ndim < 0 || value.length < 12 + 8 * ndim) {
      throw new RangeError(`malformed binary array (ndim ${ndim}, flags ${flags}, element type ${elementType}, expected ${elementOid})`);
    }
    if (ndim === 0) return "{}";
    const dims: number[] = [];
    const lowers: number[] = [];
    for (let d = 0; d < ndim; d += 1) {
      dims.push(value.readInt32BE(12 + 8 * d));
      lowers.push(value.readInt32BE(16 + 8 * d));
    }
    let at = 12 + 8 * ndim;
    const element = (): string => {
      const length = value.readInt32BE(at);
      at += 4;
      if (length === -1) return "NULL";
      const text = printElement(value.subarray(at, at + length));
      at += length;
      return text === "" || /^null$/i.test(text) || /[{}\x22,\\ \t\n\r\v\f]/.test(text) ? `"${text.replace(/[\x22\\]/g, "\\$&")}"` : text;
    };
    const level = (d: number): string => {
      const parts: string[] = [];
      for (let i = 0; i < dims[d]!; i += 1) parts.push(d === ndim - 1 ? element() : level(d + 1));
      return `{${parts.join(",")}}`;
    };
    const bounds = lowers.some((l) => l !== 1) ? `${dims.map((n, d) => `[${lowers[d]}:${lowers[d]! + n - 1}]`).join("")}=` : "";
    const text = bounds + level(0);
    if (at !== value.length) throw new RangeError(`binary array has ${value.length - at} trailing byte(s)`);
    return text;
  };
}

/** The function printing a binary value of the type `typeOid` as its text, or undefined when pgferry has none. */
export function binaryToText(typeOid: number): BinaryToText | undefined {
  const scalar = CODECS.get(typeOid);
  if (scalar) return scalar;
  const element = ARRAYS.get(typeOid);
  return element === undefined ? undefined : arrayText(element, CODECS.get(element)!);
}
