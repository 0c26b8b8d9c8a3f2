/**
 * Reverse hook of config/reorg.example.yaml for security_service.api_keys → public.api_keys. The old
 * table requires key_prefix (the first characters of the raw key), which the new project does not
 * keep. A key created on the new side is inserted with the placeholder its reverse.columns entry
 * computes; on any other change the column is left out of the row, which means "unchanged", so the
 * placeholder never overwrites the real prefix of a key the old side has.
 */
export default function keepKeyPrefix(row, context) {
  // A delete needs only the key: null deletes the mapped key.
  if (context.op === "delete") return null;
  if (context.op === "insert") return row;
  const { key_prefix: _placeholder, ...unchangedPrefix } = row;
  return unchangedPrefix;
}
