/**
 * The conflict guard of one direction of a bidirectional config (src/apply/conflictGuard.ts has the
 * model): what it needs of the other direction, read from this direction's SOURCE database, where the
 * other direction writes its state. `floor` is the other pipeline's creation (before it, the
 * destination took no writes of its own); the progress entries say when it had applied which of the
 * destination's commits. Read at most every REFRESH_MS, so a busy stream asks once per few batches.
 */
import type pg from "pg";
import type { ConflictResolution } from "../config/index.js";
import type { Direction, OppositePipeline } from "../config/directions.js";
import type { ConflictGuard, OppositeProgress } from "../apply/conflictGuard.js";
import { ConflictLog } from "../state/conflictLog.js";

const REFRESH_MS = 200;
/**
 * Progress entries from this far back are passed to the guarded statements, plus the newest older one.
 * A local write older than the window is judged by the oldest entry passed, which can only make it
 * look applied later than it was (a conflict reported that was not one), never the reverse.
 */
const WINDOW_MS = 10 * 60_000;

export interface OppositeGuardOptions {
  direction: Direction;
  resolution: ConflictResolution;
  /** This pipeline's slot and state schema (on its destination), where conflicts are recorded. */
  pipeline: string;
  stateSchema: string;
  opposite: OppositePipeline;
  /** A pool on this pipeline's source: the opposite pipeline's destination. */
  source: pg.Pool;
}

export function oppositeGuard(options: OppositeGuardOptions): ConflictGuard {
  const log = new ConflictLog({ pool: options.source, schema: options.opposite.stateSchema });
  let cached: { at: number; progress: Promise<OppositeProgress> } | undefined;
  const read = async (): Promise<OppositeProgress> => {
    const floor = await log.pipelineCreatedAt(options.opposite.slot);
    if (floor === null) return { floor: null, commitTimes: [], appliedAt: [] };
    const since = new Date(Date.now() - WINDOW_MS);
    const [recent, before] = await Promise.all([
      log.readProgress(options.source, options.opposite.slot, since),
      log.latestProgressBefore(options.opposite.slot, since),
    ]);
    if (!before) return { floor, ...recent };
    // Applied times ascend with commit times: the older entry's can be no later than the first recent one's.
    const first = recent.appliedAt[0];
    const appliedAt = first !== undefined && first < before.appliedAt ? first : before.appliedAt;
    return { floor, commitTimes: [before.commitTime, ...recent.commitTimes], appliedAt: [appliedAt, ...recent.appliedAt] };
  };
  return {
    direction: options.direction,
    resolution: options.resolution,
    pipeline: options.pipeline,
    stateSchema: options.stateSchema,
    progress() {
      const now = Date.now();
      if (!cached || now - cached.at >= REFRESH_MS) {
        const progress = read();
        cached = { at: now, progress };
        // A failed read is not kept: the next batch asks again.
        progress.catch(() => {
          if (cached?.progress === progress) cached = undefined;
        });
      }
      return cached.progress;
    },
  };
}
