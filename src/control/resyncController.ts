/**
 * What the control API needs from the per-table resync engine, injected into the server so the
 * server never imports the pipeline. Without a controller, the resync endpoints answer 501.
 */

/** One resync as the API reports it; the engine may add fields (chunks done, rows, ...). */
export interface ResyncInfo {
  id: string;
  table: string;
  state: string;
  [detail: string]: unknown;
}

export interface ResyncController {
  /** Starts a resync of `table`; throws UnknownTableError (404) or ResyncRunningError (409). */
  start(table: string): Promise<{ id: string }> | { id: string };
  /** The resync with this id, or undefined (404). */
  get(id: string): Promise<ResyncInfo | undefined> | ResyncInfo | undefined;
  /** Tables with a resync running now, for `pgferry_resync_in_progress`. */
  inProgress?(): readonly string[];
}

/** The table is not one the pipeline replicates. */
export class UnknownTableError extends Error {
  constructor(readonly table: string) {
    super(`table ${table} is not replicated by this pipeline`);
    this.name = "UnknownTableError";
  }
}

/** A resync of the table is already running; `id` names it. */
export class ResyncRunningError extends Error {
  constructor(readonly table: string, readonly id: string) {
    super(`a resync of ${table} is already running (id ${id})`);
    this.name = "ResyncRunningError";
  }
}
