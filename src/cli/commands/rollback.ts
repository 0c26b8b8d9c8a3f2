/**
 * `pgferry rollback`: back from the new project to the old one after (or during) a cutover, in four
 * recorded, resumable steps (src/cutover/procedure.ts): the new side's listed roles frozen, the reverse
 * pipeline caught up with the new side's WAL, the old side's sequences moved past the new side's, the
 * old side's roles unfrozen. `--dry-run` says what each step would do and changes nothing.
 */
import { CUTOVER_OPTIONS, cutoverArgumentProblem, runCutoverCommand } from "./switchCommand.js";
import type { Command } from "../command.js";

export const rollbackCommand: Command = {
  name: "rollback",
  summary: "go back to the old project: freeze the new one, let the reverse catch up, unfreeze the old one",
  usage: "pgferry rollback [--config pgferry.yaml] [--dry-run] [--timeout 300s]",
  options: { ...CUTOVER_OPTIONS },
  validate: cutoverArgumentProblem,
  run: (values, _positionals, io) => runCutoverCommand(values, io, "rollback"),
};
