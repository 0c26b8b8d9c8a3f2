/**
 * Which source columns a SQL expression mentions. pgferry does not parse SQL; it looks for each
 * column's name as an identifier outside string literals (unquoted: case-insensitive word; quoted:
 * exact). That can over-report (a function named like a column) but never misses a plain reference,
 * which is the safe side for what it is used for: knowing which inputs an expression needs.
 */
import { quoteIdent } from "../sql/quote.js";

function withoutStringLiterals(expr: string): string {
  return expr.replace(/'(?:[^']|'')*'/g, "''").replace(/\$([A-Za-z_]*)\$[\s\S]*?\$\1\$/g, "''");
}

export function referencedColumns(expr: string, columns: readonly string[]): string[] {
  const text = withoutStringLiterals(expr);
  const lower = text.toLowerCase();
  return columns.filter((column) => {
    if (text.includes(quoteIdent(column))) return true;
    if (column !== column.toLowerCase()) return false; // only reachable quoted
    const pattern = new RegExp(`(^|[^A-Za-z0-9_$"])${column.replace(/\$/g, "\\$")}($|[^A-Za-z0-9_$"])`);
    return pattern.test(lower);
  });
}
