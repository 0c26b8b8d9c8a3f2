/**
 * `pgferry plan` output: per source table, the targets it feeds and, per target column, where its
 * value comes from, with the key, the filter, the discriminator and how the snapshot copies it.
 */
import { describeOrigin, type TablePlan } from "./plan.js";

export function formatPlan(plans: readonly TablePlan[]): string {
  const lines: string[] = [];
  for (const plan of plans) {
    const key = plan.source.identityKey?.join(", ") ?? "none (REPLICA IDENTITY FULL: rows matched on all values)";
    const kind = plan.source.kind === "partitioned" ? `, partitioned: ${plan.source.partitions.length} partitions streamed via the root` : "";
    lines.push(`${plan.id}  (key: ${key}${kind})`);
    for (const edge of plan.edges) {
      const path = edge.hook ? "code path (hook)" : edge.copyFormat === "binary" ? "binary COPY pipe" : "SQL pushdown, text COPY pipe";
      lines.push(`  -> ${edge.table.id}  [tables[${edge.index}]; snapshot: ${path}]`);
      const width = Math.max(...edge.table.columns.map((c) => c.name.length));
      edge.table.columns.forEach((column, i) => {
        const isKey = edge.table.keyIndexes.includes(i) ? " [key]" : "";
        lines.push(`       ${column.name.padEnd(width)}  <- ${describeOrigin(edge.origins[i]!)}${isKey}`);
      });
      if (edge.filter) lines.push(`       where ${edge.filter.expr}`);
      if (edge.ownership) lines.push(`       rows of this source: ${edge.ownership.map((o) => `${o.column} = '${o.value}'`).join(" AND ")}`);
      if (edge.hook) lines.push(`       hook ${edge.hook}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
