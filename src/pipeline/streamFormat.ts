/**
 * Whether the stream asks pgoutput for binary values (`binary 'true'`, apply.format). In binary mode
 * pgoutput sends every column in its type's binary send format; pgferry passes a column it only
 * copies into an identical type through untouched (plan.ts `opaqueInputs`: the target reads it with
 * the type's receive function, so neither end prints or parses text), and prints every column it
 * reads (keys, filter and SQL inputs, hook rows, arrays) as text with source/binaryText.ts. A
 * column pgferry reads whose type has no printer there keeps the whole stream in text: `auto` falls
 * back, `binary` refuses with the columns.
 */
import { opaqueInputs, type TablePlan } from "../plan/plan.js";
import { binaryToText } from "../source/binaryText.js";

export type StreamFormat = "auto" | "binary" | "text";

/** The columns that keep a stream of `plans` in text: read by pgferry, of a type binaryText.ts cannot print. */
export function textOnlyColumns(plans: readonly TablePlan[]): string[] {
  return plans.flatMap((plan) => {
    const opaque = opaqueInputs(plan);
    return plan.sourceColumns.flatMap((name, input) => {
      if (opaque[input]) return [];
      const column = plan.source.columns.find((c) => c.name === name);
      return column && binaryToText(column.typeOid) === undefined ? [`${plan.id}.${name} (${column.type})`] : [];
    });
  });
}

/** Whether a stream of `plans` is binary under `format`; `problem` when `binary` was asked for and cannot be had. */
export function binaryStream(format: StreamFormat, plans: readonly TablePlan[]): { binary: boolean; problem?: string } {
  if (format === "text") return { binary: false };
  const textOnly = textOnlyColumns(plans);
  if (textOnly.length === 0) return { binary: true };
  if (format === "auto") return { binary: false };
  return {
    binary: false,
    problem:
      `apply.format is binary, but pgferry reads these columns (keys, filters, SQL inputs, hooks, arrays) and cannot print their type from binary: ` +
      `${textOnly.join(", ")}; use apply.format: auto (a text stream here) or text`,
  };
}

/** One line for `pgferry plan` and the "streaming" log: how the stream will carry values, and why. */
export function describeStreamFormat(format: StreamFormat, plans: readonly TablePlan[]): string {
  if (format === "text") return "stream: text values (apply.format: text)";
  const textOnly = textOnlyColumns(plans);
  if (textOnly.length === 0) return `stream: binary values from pgoutput, copied columns passed through (apply.format: ${format})`;
  const shown = textOnly.length > 5 ? [...textOnly.slice(0, 5), `${textOnly.length - 5} more`] : textOnly;
  return `stream: text values (apply.format: ${format}; pgferry reads ${shown.join(", ")}, and cannot print their type from binary)`;
}
