/**
 * The SQL layer's quoting: the one place pgferry turns a name or a value into SQL text. Everything
 * that builds a statement with a name in it (apply, snapshot, verify, state, transform, pipeline)
 * quotes through here; values travel as parameters wherever the protocol allows one, and as a
 * quoted literal only where it does not (replication commands, SET TRANSACTION SNAPSHOT, a
 * mapping's constants inside pushed-down SQL, SQL quoted in a message).
 */

/** An identifier, always double-quoted (so case and any character survive): `"Order ""A"""`. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."name"` for a table or any other schema-qualified object. */
export function qualifiedName(table: { schema: string; name: string }): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
}

/**
 * A string literal: `'it''s'`. Only the quote is doubled: a backslash is an ordinary character under
 * standard_conforming_strings = on (PostgreSQL's default since 9.1) and in a walsender command.
 */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
