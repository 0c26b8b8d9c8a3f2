/**
 * Reverse hook of config/reorg.example.yaml for vendors.vendors → public.vendors: the row goes back
 * as it is. The forward hook (normalizeWebsite.mjs) only normalises `website` to a URL origin or
 * NULL, and the old project reads such a website as well as the hand-typed one, so vendor edits made
 * on the new side are carried back unchanged rather than left behind. A forward hook cannot be
 * inverted by pgferry; this module is the statement that nothing needs undoing (docs/reverse.md).
 */
export default function keepNormalizedWebsite(row, context) {
  // A delete needs only the key: null deletes the mapped key.
  if (context.op === "delete") return null;
  return row;
}
