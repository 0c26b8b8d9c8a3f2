/**
 * `pgferry sequences sync`: moves the key sequences of one side ahead of every key the other side has
 * used (src/cutover/sequences.ts, docs/cutover.md "Sequences"), so that the first insert after the
 * switch (forward: the new project's) or after a rollback (`--direction reverse`: the old project's)
 * cannot collide. Never moves a sequence backwards; `--dry-run` prints the same lines and changes
 * nothing. Exit 0 whether or not anything moved.
 */
import { loadConfig } from "../../config/index.js";
import { sequenceSettings } from "../../config/schema.js";
import { syncSequences, type SyncDirection } from "../../cutover/sequences.js";
import type { SequenceChange } from "../../cutover/types.js";
import { databasePools } from "../../sql/pools.js";
import { CONFIG_OPTION, EXIT_OK, unexpectedPositionals, type Command } from "../command.js";

const SYNC_DIRECTIONS: readonly SyncDirection[] = ["forward", "reverse"];

/** `target shared_services.organizations_id_seq (shared_services.organizations.id): 21 → 1021 (source ... at 20, column max 20, gap 1000)` */
export function formatSequenceChange(change: SequenceChange): string {
  const column = change.column === null ? "" : ` (${change.column})`;
  return `${change.side} ${change.sequence}${column}: ${change.from.toString()} → ${change.to.toString()} (${change.reason})`;
}

export const sequencesCommand: Command = {
  name: "sequences",
  summary: "sequences sync: move key sequences past the other side's keys before a switch (or rollback)",
  usage: "pgferry sequences sync [--config pgferry.yaml] [--direction forward|reverse] [--dry-run] [--json]",
  options: {
    ...CONFIG_OPTION,
    direction: { type: "string", default: "forward" },
    "dry-run": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
  validate(values, positionals) {
    const [subcommand, ...extra] = positionals;
    if (subcommand === undefined) return "missing subcommand: sequences sync";
    if (subcommand !== "sync") return `unknown subcommand '${subcommand}' (sequences has one: sync)`;
    if (!SYNC_DIRECTIONS.includes(String(values.direction) as SyncDirection)) return `--direction must be forward or reverse, not '${String(values.direction)}'`;
    return unexpectedPositionals(extra);
  },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const direction = String(values.direction) as SyncDirection;
    const dryRun = values["dry-run"] === true;
    const pools = databasePools(config, "pgferry-sequences", 2);
    try {
      const changes = await syncSequences({ config, direction, old: pools.source, new: pools.target, dryRun });
      if (values.json) {
        const json = changes.map((c) => ({ ...c, from: c.from.toString(), to: c.to.toString() }));
        io.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      } else if (changes.length === 0) {
        io.stdout.write(`all sequences ahead (gap ${sequenceSettings(config).gap})\n`);
      } else {
        io.stdout.write(changes.map((c) => `${formatSequenceChange(c)}\n`).join(""));
      }
      if (dryRun) io.stderr.write("dry run: no sequence was changed\n");
      return EXIT_OK;
    } finally {
      await pools.end();
    }
  },
};
