/** The in-memory state stores (for unit tests), built on one MemoryState. */
import { MemoryCheckpointStore } from "./memoryCheckpointStore.js";
import { MemoryState } from "./memoryState.js";
import { MemoryResyncStore } from "./memoryResyncStore.js";

/** A pipeline's memory stores, on a new state or on `state` (shared with other pipelines'). */
export function memoryStores(options: { pipeline: string; state?: MemoryState }): { checkpoints: MemoryCheckpointStore; resyncs: MemoryResyncStore; state: MemoryState } {
  const state = options.state ?? new MemoryState();
  return { checkpoints: new MemoryCheckpointStore(state, options.pipeline), resyncs: new MemoryResyncStore(state, options.pipeline), state };
}
