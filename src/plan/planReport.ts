/**
 * `pgferry plan` output: per source table, the targets it feeds and, per target column, where its
 * value comes from, with the key, the filter, the discriminator and how the snapshot copies it.
 * `plan --reverse` prints the inverse plan the same way, from the new database back to the old one.
 */
import { describeOrigin, type EdgePlan, type TablePlan } from "./plan.js";

export function formatPlan(plans: readonly TablePlan[]): string {
  const lines: string[] = [];
  for (const plan of plans) {
    lines.push(sourceLine(plan));
    for (const edge of plan.edges) {
      const path = edge.hook ? "code path (hook)" : edge.copyFormat === "binary" ? "binary COPY pipe" : "SQL pushdown, text COPY pipe";
      lines.push(`  -> ${edge.table.id}  [tables[${edge.index}]; snapshot: ${path}]`);
      lines.push(...columnLines(edge));
      if (edge.filter) lines.push(`       where ${edge.filter.expr}`);
      if (edge.ownership) lines.push(`       rows of this source: ${edge.ownership.map((o) => `${o.column} = '${o.value}'`).join(" AND ")}`);
      if (edge.hook) lines.push(`       hook ${edge.hook}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The inverse plan: per table of the new database, the old tables it is carried back to, each old
 * column with its origin, the constants that route a row back, and whether only updates are carried.
 * Its edges name the forward entry they invert; the notes list forward-only entries and the rest.
 */
export function formatReversePlan(reverse: { plans: readonly TablePlan[]; notes: readonly string[] }): string {
  const lines = ["reverse plan (new → old): changes in the new database carried back to the old one (docs/reverse.md)"];
  for (const plan of reverse.plans) {
    lines.push(sourceLine(plan));
    for (const edge of plan.edges) {
      const mode = edge.table.updateOnly ? "updates only" : "inserts, updates, deletes";
      lines.push(`  -> ${edge.table.id}  [tables[${edge.index}].reverse; ${mode}]`);
      lines.push(...columnLines(edge));
      if (edge.filter) lines.push(`       rows routed back: ${edge.filter.expr}`);
      if (edge.hook) lines.push(`       hook ${edge.hook}`);
    }
  }
  if (reverse.notes.length > 0) lines.push("", "notes:", ...reverse.notes.map((n) => `  - ${n}`));
  return `${lines.join("\n")}\n`;
}

function sourceLine(plan: TablePlan): string {
  const key = plan.source.identityKey?.join(", ") ?? "none (REPLICA IDENTITY FULL: rows matched on all values)";
  const kind = plan.source.kind === "partitioned" ? `, partitioned: ${plan.source.partitions.length} partitions streamed via the root` : "";
  return `${plan.id}  (key: ${key}${kind})`;
}

function columnLines(edge: EdgePlan): string[] {
  const width = Math.max(...edge.table.columns.map((c) => c.name.length));
  return edge.table.columns.map((column, i) => {
    const isKey = edge.table.keyIndexes.includes(i) ? " [key]" : "";
    return `       ${column.name.padEnd(width)}  <- ${describeOrigin(edge.origins[i]!)}${isKey}`;
  });
}
