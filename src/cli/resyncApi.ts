/**
 * The control API's view of the resync engine: the engine's typed errors become the API's
 * (404 unknown table, 409 already running), and records become the JSON `GET /v1/resyncs/:id` shows.
 */
import { ResyncRunningError, UnknownTableError, type ResyncController, type ResyncInfo } from "../control/resyncController.js";
import { ResyncAlreadyRunningError, ResyncUnknownTableError, type ResyncEngine } from "../pipeline/resync/resyncEngine.js";

export function resyncApi(engine: ResyncEngine): ResyncController {
  return {
    async start(table) {
      try {
        return await engine.start(table);
      } catch (error) {
        if (error instanceof ResyncUnknownTableError) throw new UnknownTableError(table);
        if (error instanceof ResyncAlreadyRunningError) throw new ResyncRunningError(table, error.id);
        throw error;
      }
    },
    async get(id): Promise<ResyncInfo | undefined> {
      const record = await engine.get(id);
      if (!record) return undefined;
      return {
        id: record.id,
        table: record.table,
        state: record.state,
        rowsDone: record.rowsDone,
        rowsEstimated: record.rowsEstimated,
        chunksDone: record.chunksDone,
        lastKey: record.lastKey,
        startedAt: record.startedAt.toISOString(),
        finishedAt: record.finishedAt?.toISOString() ?? null,
        error: record.error,
      };
    },
    inProgress: () => engine.inProgress(),
  };
}
