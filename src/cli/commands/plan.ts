/** `pgferry plan`: validates the config and prints what each source table becomes. */
import { loadConfig } from "../../config/index.js";
import { CONFIG_OPTION, EXIT_OK, type Command } from "../command.js";

export const planCommand: Command = {
  name: "plan",
  summary: "validate the config and print the mapping plan",
  usage: "pgferry plan [--config pgferry.yaml]",
  options: { ...CONFIG_OPTION },
  run(values, _positionals, io) {
    const config = loadConfig(String(values.config), io.env);
    const width = Math.max(...config.tables.map((t) => t.from.length));
    for (const table of config.tables) {
      io.stdout.write(`${table.from.padEnd(width)}  ->  ${table.to}\n`);
    }
    return Promise.resolve(EXIT_OK);
  },
};
