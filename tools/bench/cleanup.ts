/**
 * Everything the bench starts (clusters, pgferry processes, databases) registers how to undo it
 * here, so a normal end, an error and Ctrl-C all leave nothing behind. The first SIGINT/SIGTERM
 * cleans up and exits 130; a second one exits at once.
 */
export type Disposer = () => Promise<void>;

export class Cleanup {
  /** Set by the first SIGINT/SIGTERM: no new work should start. */
  interrupted = false;
  private readonly disposers = new Map<number, { name: string; dispose: Disposer }>();
  private next = 0;

  /** Registers `dispose`; the returned function unregisters it (after the caller undid it itself). */
  add(name: string, dispose: Disposer): () => void {
    const id = this.next++;
    this.disposers.set(id, { name, dispose });
    return () => {
      this.disposers.delete(id);
    };
  }

  /** Throws when a signal asked the bench to stop, so the next scenario does not start. */
  checkInterrupted(): void {
    if (this.interrupted) throw new Error("interrupted");
  }

  /** Runs every disposer, newest first; failures are reported, not thrown. */
  async runAll(report: (line: string) => void): Promise<void> {
    const entries = [...this.disposers.entries()].reverse();
    this.disposers.clear();
    for (const [, { name, dispose }] of entries) {
      try {
        await dispose();
      } catch (error) {
        report(`cleanup of ${name} failed: ${(error as Error).message}`);
      }
    }
  }

  /** Cleans up and exits on the first SIGINT/SIGTERM; the returned function removes the handlers. */
  onSignals(report: (line: string) => void): () => void {
    let received = 0;
    const handler = (signal: NodeJS.Signals) => {
      received += 1;
      if (received > 1) process.exit(130);
      this.interrupted = true;
      report(`${signal}: stopping and removing the bench clusters (send again to exit at once)`);
      void this.runAll(report).finally(() => process.exit(130));
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
    return () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    };
  }
}
