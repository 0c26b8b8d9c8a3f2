/**
 * What a benchmarked replication system must offer the scenarios: start with an initial copy,
 * stop applying while a backlog builds up, start again, and say whether it is still healthy.
 * Implemented by pgferry (the CLI as a child process) and native logical replication.
 */
export interface PhaseProcessStats {
  /** Peak resident set size (Linux VmHWM) of the replicating process during the phase, bytes. */
  peakRssBytes: number;
  /** CPU profile written by the process (with --profile). */
  cpuProfile?: string;
}

export interface Replicator {
  readonly system: string;
  /** Schema of the replicated tables in the target database. */
  readonly targetSchema: string;
  /** Starts replication with an initial copy; resolves when every table is copied and streaming. */
  startWithSnapshot(timeoutMs: number): Promise<void>;
  /** Stops applying; changes accumulate in the slot. Stats of the process that ran, if any. */
  pause(label: string): Promise<PhaseProcessStats | undefined>;
  /** Starts applying again from where it stopped. */
  resume(label: string): Promise<void>;
  /** Seconds from `resume` until the system said it is streaming, when it says so. */
  readonly startupSeconds: number | undefined;
  /**
   * CPU seconds used so far by the processes replicating now (replicator process, source walsender,
   * target apply backend), keyed by role. They start with `resume`, so after a phase this is its cost.
   */
  cpuSeconds(): Promise<Record<string, number>>;
  /** Throws when the system has failed (process exited, apply errors). */
  health(): Promise<void>;
  /** Stops everything and removes its replication objects (slot, subscription). Safe twice. */
  dispose(): Promise<void>;
}
