/**
 * The status page's small charts (replication lag, applied changes per second over the last hour),
 * drawn on the server as inline SVG polylines from the monitor's ring buffer of samples: no charting
 * library, no external service, nothing for the page's Content-Security-Policy to allow. The same
 * polyline travels in `/v1/status` (`history`), and the page's refresh script sets it as the
 * polyline's `points` attribute.
 */

/** One value at a moment (ms); null when it was not known then (lag before the first poll). */
export interface ChartSample {
  at: number;
  value: number | null;
}

/** A chart as the page draws it: the polyline in the frame's coordinates and the y axis's top. */
export interface Chart {
  /** SVG `points`: `x,y` pairs, x from 0 (the window's start) to `width` (now), y downwards from the top. */
  points: string;
  /** The value at the top of the chart (a round number at or above every value shown). */
  max: number;
  /** The newest value, if any. */
  latest: number | null;
}

export interface ChartFrame {
  now: number;
  windowMs: number;
  width: number;
  height: number;
}

/** The last hour, in a 360 × 60 box: one x unit per 10 s sample. */
export const CHART_WINDOW_MS = 3_600_000;
export const CHART_WIDTH = 360;
export const CHART_HEIGHT = 60;

/** The smallest 1, 2 or 5 × 10^k at or above `value` (1 for nothing above 0). */
export function niceCeiling(value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    // Rounded so that 0.1 * 3 style float noise does not push 0.3 to 0.5.
    const candidate = Number((step * power).toPrecision(12));
    if (candidate >= value) return candidate;
  }
  return 10 * power;
}

const coordinate = (n: number) => String(Math.round(n * 10) / 10);

export function chart(samples: readonly ChartSample[], frame: ChartFrame): Chart {
  const start = frame.now - frame.windowMs;
  const shown = samples.filter((s): s is { at: number; value: number } => s.value !== null && Number.isFinite(s.value) && s.at >= start && s.at <= frame.now);
  const max = niceCeiling(Math.max(0, ...shown.map((s) => s.value)));
  const points = shown.map((s) => {
    const x = ((s.at - start) / frame.windowMs) * frame.width;
    const y = frame.height - (Math.max(0, s.value) / max) * frame.height;
    return `${coordinate(x)},${coordinate(y)}`;
  });
  const last = samples[samples.length - 1];
  return { points: points.join(" "), max, latest: last?.value ?? null };
}

/** Per-second rates between consecutive cumulative totals, each at the later sample's time. */
export function rates(samples: readonly { at: number; total: number }[]): ChartSample[] {
  const out: ChartSample[] = [];
  for (let i = 1; i < samples.length; i += 1) {
    const previous = samples[i - 1]!;
    const current = samples[i]!;
    const seconds = (current.at - previous.at) / 1000;
    if (seconds <= 0) continue;
    out.push({ at: current.at, value: Math.max(0, current.total - previous.total) / seconds });
  }
  return out;
}

const escapeXml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

/**
 * The chart's markup for the status page. Element ids derive from `id`: `<id>-line` (the polyline),
 * `<id>-max` (the top value's label) and `<id>-latest`, which the refresh script updates.
 */
export function renderChart(options: { id: string; title: string; chart: Chart; format: (value: number) => string; width?: number; height?: number }): string {
  const { id, title, chart: c, format } = options;
  const width = options.width ?? CHART_WIDTH;
  const height = options.height ?? CHART_HEIGHT;
  const latest = c.latest === null ? "–" : format(c.latest);
  return `<figure class="chart">
<figcaption>${escapeXml(title)}: <span id="${id}-latest">${escapeXml(latest)}</span></figcaption>
<svg id="${id}" viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img" aria-label="${escapeXml(title)} over the last hour">
<line class="grid" x1="0" y1="0.5" x2="${width}" y2="0.5"/><line class="axis" x1="0" y1="${height}" x2="${width}" y2="${height}"/>
<polyline id="${id}-line" class="line" points="${escapeXml(c.points)}"/>
</svg>
<div class="chart-scale"><span>1 h ago</span><span>max <span id="${id}-max">${escapeXml(format(c.max))}</span></span><span>now</span></div>
</figure>`;
}
