/**
 * Undefined table (SQLSTATE 42P01) or schema (3F000): for pgferry's own state, a schema not created or
 * not migrated that far yet, which its readers take as nothing recorded.
 */
export function isMissingRelation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "42P01" || code === "3F000";
}
