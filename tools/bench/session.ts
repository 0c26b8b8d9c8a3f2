/** What one bench session is asked to run and with what: shared by the system runs and the rate search. */
import type { LocalCluster } from "../embedded/localCluster.js";
import type { FixtureStats } from "./fixture.js";

/** The one-way scenarios run by SystemRun, and the reverse pipeline's (reverseScenario.ts). */
export type Scenario = "snapshot" | "drain" | "lag" | "reverse" | "bidirectional" | "maxrate";

export interface SessionSettings {
  scenarios: ReadonlySet<Scenario>;
  sourceUrl: string;
  targetUrl: string;
  clusters: readonly LocalCluster[];
  fixture: FixtureStats;
  backlogTransactions: number;
  lagSeconds: number;
  /** Workload transactions per second during the lag scenario. */
  lagRate: number;
  /** Seconds of each window of the maxrate scenario (rateSearch.ts). */
  rateSeconds: number;
  timeoutMs: number;
  /** Compare every table on both sides at the end (only for identity mappings). Default true. */
  verify?: boolean;
  log: (line: string) => void;
}
