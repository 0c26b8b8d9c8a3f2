/**
 * The two directions of one config. The forward pipeline reads the source (old) database and writes
 * the target (new); the reverse pipeline, present when the config has a `reverse` section, reads the
 * new database and writes the old one through the inverse of `tables` (docs/reverse.md). The reverse
 * is the same pipeline code handed a *view* of the config with the two databases swapped: its slot
 * and publication on the new database, its state schema on the old one (committed with the data it
 * writes, docs/design.md rule 2), its own control address. `tables` stays the forward mapping; the
 * reverse plan is compiled from it (src/plan/inverseMapping.ts).
 */
import { ConfigError } from "../errors.js";
import type { Config } from "./schema.js";

export type Direction = "forward" | "reverse";
export const DIRECTIONS: readonly Direction[] = ["forward", "reverse"];

/** The replication origin a pipeline's apply sessions tag their writes with: the opposite reader drops them. */
export function originName(slot: string): string {
  return `pgferry_${slot}`;
}

/** The config as the pipeline of `direction` sees it (forward: unchanged). */
export function directionConfig(config: Config, direction: Direction): Config {
  if (direction === "forward") return config;
  const reverse = config.reverse;
  if (!reverse) throw new ConfigError("(config)", ["reverse: the config has no reverse section; add one to run the reverse pipeline (docs/reverse.md)"]);
  return {
    ...config,
    source: { url: config.target.url, slot: reverse.slot, publication: reverse.publication },
    target: { url: config.source.url, stateSchema: reverse.stateSchema },
    control: { ...config.control, listen: reverse.listen },
  };
}

/** What one direction knows of the other: its slot (origin, state rows) and where its state lives. */
export interface OppositePipeline {
  direction: Direction;
  /** Its replication slot: the state's pipeline name and, through originName, its origin. */
  slot: string;
  /** Its state schema, in this direction's SOURCE database (the opposite's target). */
  stateSchema: string;
}

/** The other direction of a bidirectional config, or null when the config has no `reverse` section. */
export function oppositeOf(config: Config, direction: Direction): OppositePipeline | null {
  if (!config.reverse) return null;
  return direction === "forward"
    ? { direction: "reverse", slot: config.reverse.slot, stateSchema: config.reverse.stateSchema }
    : { direction: "forward", slot: config.source.slot, stateSchema: config.target.stateSchema };
}
