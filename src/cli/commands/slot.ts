/**
 * `pgferry slot drop`: drops the pipeline's replication slot on the source (releasing the WAL it
 * retains) and forgets the pipeline's state in the target, so the next `run` starts over with a fresh
 * snapshot. Refuses while a pgferry process is still streaming from the slot.
 */
import { loadConfig } from "../../config/index.js";
import { PgferryError } from "../../errors.js";
import { databasePools } from "../../sql/pools.js";
import { postgresStores } from "../../state/postgresStores.js";
import { CONFIG_OPTION, EXIT_OK, unexpectedPositionals, type Command } from "../command.js";

export const slotCommand: Command = {
  name: "slot",
  summary: "slot drop: drop the replication slot and reset the pipeline state (next run re-copies)",
  usage: "pgferry slot drop [--config pgferry.yaml]",
  options: { ...CONFIG_OPTION },
  validate(_values, positionals) {
    const [subcommand, ...extra] = positionals;
    if (subcommand === undefined) return "missing subcommand: slot drop";
    if (subcommand !== "drop") return `unknown subcommand '${subcommand}' (slot has one: drop)`;
    return unexpectedPositionals(extra);
  },
  async run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const pools = databasePools(config, "pgferry-slot", 1);
    const { source, target } = pools;
    try {
      const { rows } = await source.query<{ active_pid: number | null }>("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [config.source.slot]);
      const slot = rows[0];
      if (slot?.active_pid) {
        throw new PgferryError("state", `slot ${config.source.slot} is in use by walsender pid ${slot.active_pid}`, { hint: "stop the running pgferry first" });
      }
      if (slot) {
        await source.query("SELECT pg_drop_replication_slot($1)", [config.source.slot]);
        io.stdout.write(`dropped replication slot ${config.source.slot}\n`);
      } else {
        io.stdout.write(`no replication slot ${config.source.slot}\n`);
      }
      const store = postgresStores({ pool: target, schema: config.target.stateSchema, pipeline: config.source.slot }).checkpoints;
      const { rows: schema } = await target.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [config.target.stateSchema]);
      if (schema.length > 0) {
        await store.reset();
        io.stdout.write(`reset pipeline state in ${config.target.stateSchema}; the next run starts with a fresh snapshot\n`);
      }
      return EXIT_OK;
    } finally {
      await pools.end();
    }
  },
};
