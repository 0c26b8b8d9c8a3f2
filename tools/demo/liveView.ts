/**
 * The live terminal view: samples the daemon about once a second. On a terminal it redraws one
 * frame in place (ANSI: cursor up, clear to the end of the screen); elsewhere it prints a status line
 * every few seconds. Messages (`print`) appear above the frame and stay. Phase changes are announced
 * as messages, `streaming: live changes are flowing` first of all (scripts and tests wait for it).
 */
import type { Phase } from "../../src/pipeline/pipeline.js";
import { renderFrame, snapshotReport, statusLine, type ViewContext } from "./viewFormat.js";
import type { ViewSample, ViewSampler } from "./viewSampler.js";

export const STREAMING_LINE = "streaming: live changes are flowing";

export interface LiveViewOptions {
  out: NodeJS.WriteStream;
  sampler: ViewSampler;
  context: ViewContext;
  refreshMs?: number;
  /** How often a status line is printed when `out` is not a terminal. */
  lineEveryMs?: number;
}

const ESC = "\u001b[";

export class LiveView {
  private readonly out: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly refreshMs: number;
  private readonly lineEveryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private stopped = false;
  private frame: string[] = [];
  /** Lines of the frame currently on the screen (TTY), to move back over. */
  private drawn = 0;
  private lastLineAt = 0;
  private phase: Phase | undefined;
  private streamedOnce = false;
  private snapshotReported = false;
  private readonly showCursor = () => {
    if (this.tty) this.out.write(`${ESC}?25h`);
  };

  constructor(private readonly options: LiveViewOptions) {
    this.out = options.out;
    this.tty = Boolean(options.out.isTTY);
    this.refreshMs = options.refreshMs ?? 1_000;
    this.lineEveryMs = options.lineEveryMs ?? 5_000;
  }

  start(): void {
    if (this.tty) {
      this.out.write(`${ESC}?25l`);
      process.once("exit", this.showCursor); // also after a forced exit
    }
    this.schedule(0);
  }

  /** A line that stays, above the frame. */
  print(message: string): void {
    if (!this.tty) {
      this.out.write(`${message}\n`);
      return;
    }
    this.erase();
    this.out.write(`${message}\n`);
    this.draw(this.frame);
  }

  /** Stops refreshing; on a terminal the last frame stays on the screen. Safe to call twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.refreshing;
    if (this.tty) {
      this.showCursor();
      process.off("exit", this.showCursor);
      this.drawn = 0; // later output goes below the last frame
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.refreshing = this.refresh().finally(() => this.schedule(this.refreshMs));
    }, delayMs);
    this.timer.unref(); // the view never keeps the process alive on its own
  }

  private async refresh(): Promise<void> {
    let sample: ViewSample;
    try {
      sample = await this.options.sampler.sample();
    } catch (error) {
      this.print(`live view: cannot read pgferry's status: ${(error as Error).message}`);
      return;
    }
    if (this.stopped) return;
    this.announce(sample);
    if (this.tty) {
      this.erase();
      this.draw(renderFrame(sample, this.options.context, Math.max(10, (this.out.rows || 40) - 1)));
    } else if (sample.at - this.lastLineAt >= this.lineEveryMs) {
      this.lastLineAt = sample.at;
      this.out.write(`${statusLine(sample, this.options.context)}\n`);
    }
  }

  private announce(sample: ViewSample): void {
    const { phase, tables } = sample.status;
    // The table states come from polls of the target: the last copies show as ready a moment after streaming began.
    if (phase === "streaming" && !this.snapshotReported && tables.length > 0 && tables.every((t) => t.state === "ready")) {
      this.snapshotReported = true;
      this.print(snapshotReport(tables));
    }
    if (phase === this.phase) return;
    const previous = this.phase;
    this.phase = phase;
    if (phase === "streaming" && !this.streamedOnce) {
      this.streamedOnce = true;
      this.print(STREAMING_LINE);
    } else if (previous !== undefined) {
      this.print(`phase: ${previous} → ${phase}`);
    }
  }

  private erase(): void {
    if (this.drawn > 0) this.out.write(`${ESC}${this.drawn}A\r${ESC}J`);
    this.drawn = 0;
  }

  private draw(lines: string[]): void {
    this.frame = lines;
    if (lines.length === 0) return;
    // A line wider than the terminal wraps and would break the count of lines to move back over.
    const width = Math.max(20, (this.out.columns || 120) - 1);
    this.out.write(`${lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l)).join("\n")}\n`);
    this.drawn = lines.length;
  }
}
