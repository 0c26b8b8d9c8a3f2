/**
 * Two-stage shutdown: the first SIGTERM/SIGINT asks the pipeline to drain (finish the current
 * batch, acknowledge it, exit 0); a second one exits at once (nothing is lost: unacknowledged
 * changes stay in the slot).
 */
export function handleShutdownSignals(onDrain: (signal: NodeJS.Signals) => void, onForce: (signal: NodeJS.Signals) => void): () => void {
  let received = 0;
  const handler = (signal: NodeJS.Signals) => {
    received += 1;
    if (received === 1) onDrain(signal);
    else onForce(signal);
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
  return () => {
    process.off("SIGTERM", handler);
    process.off("SIGINT", handler);
  };
}
