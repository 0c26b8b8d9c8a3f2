/**
 * How the V8 heap of a pgferry process grows. pgferry keeps about 35 MB of live objects while it
 * streams, but it allocates fast (every change's values as strings, every batch's parameters), and on
 * a machine with a few GB of memory V8 then lets the old generation grow to 4 × the live data after
 * each full collection, and keeps a 32 MB young generation: the peak RSS of a backlog drain was about
 * 260 MB, of which over 100 MB were garbage not yet collected (bench, issue 15).
 *
 * Two settings bring it down without a cap on the heap:
 * - the old generation grows by a factor of 2, not up to 4 (`--heap-growing-percent`, which V8
 *   reads at every full collection, so setting it at start-up takes effect);
 * - the young generation has 2 MB semi-spaces, not 16 (`--max-semi-space-size`, which V8 reads only
 *   when it starts: the container image sets it in NODE_OPTIONS, `RUNTIME_NODE_OPTIONS`). Most of
 *   what a batch allocates dies young either way; smaller semi-spaces collect it sooner. Measured
 *   (bench, drain, 3 paired runs, with MALLOC_MMAP_THRESHOLD_ below): peak RSS 142 MiB (140–146)
 *   against 166 (161–168) with 8 MB, at 1.60 × (1.59–1.68) against 1.68 × (1.53–1.76) native and
 *   12.8 against 11.9 s of pgferry CPU; a 1M-row transaction peaked at 126–129 MiB against 133–141.
 */
import v8 from "node:v8";

/** The Dockerfile's `ENV NODE_OPTIONS` (test/unit/deployManifests.test.ts keeps them equal); the bench runs pgferry with it too. */
export const RUNTIME_NODE_OPTIONS = "--max-semi-space-size=2";

/**
 * The rest of the environment the container image gives pgferry (the Dockerfile's `ENV`, kept equal
 * by the same test; the bench sets it too). `MALLOC_MMAP_THRESHOLD_`: glibc serves allocations from
 * 128 KiB up with their own mappings, returned to the system when freed. Without it, once blocks of
 * several MiB have been freed (pg's Bind buffer for a batch's parameters grows to 8, then 12 MiB),
 * glibc raises its threshold and serves such blocks from its heap, which keeps them: about 19 MB of
 * RSS at a drain's peak. Measured (bench, drain, 3 paired runs): peak RSS 164 MiB (162–177) against
 * 187 (173–192), at 1.60 × (1.51–1.74) against 1.55 × (1.52–1.70) native.
 */
export const RUNTIME_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: "131072" };

const HEAP_GROWING_PERCENT = 100;

export function applyHeapPolicy(): void {
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
