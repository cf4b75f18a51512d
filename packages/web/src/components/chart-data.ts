/** One line of a chart: its points as [x, y] in any order. */
export interface ChartSeries {
  label: string;
  points: ReadonlyArray<readonly [number, number]>;
}

/** Line colours, told apart in light and dark themes and by most colour-blind readers. */
export const SERIES_COLOURS = ['#3b82f6', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16'];

export function seriesColour(index: number): string {
  return SERIES_COLOURS[index % SERIES_COLOURS.length]!;
}

/**
 * Points ordered by x. Concurrent workers report steps out of order; drawn
 * in arrival order the line would zig-zag back and forth. The sort is
 * stable, so points with the same x keep their arrival order.
 */
export function sortedByX(points: ChartSeries['points']): Array<[number, number]> {
  return points.map(([x, y]) => [x, y] as [number, number]).sort((a, b) => a[0] - b[0]);
}

/**
 * The series as uPlot's aligned columns: one x column (every x any series
 * has, ascending) and one y column per series, null where a series has no
 * point at that x.
 */
export function alignedData(series: readonly ChartSeries[]): [number[], ...Array<Array<number | null>>] {
  const sorted = series.map((s) => dedupeX(sortedByX(s.points)));
  const xs = [...new Set(sorted.flatMap((points) => points.map((p) => p[0])))].sort((a, b) => a - b);
  const columns = sorted.map((points) => {
    const at = new Map(points);
    return xs.map((x) => at.get(x) ?? null);
  });
  return [xs, ...columns];
}

/** Several points at one x would draw a vertical stroke; the latest reported one stands for that x. */
function dedupeX(sorted: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const p of sorted) {
    if (out.length > 0 && out[out.length - 1]![0] === p[0]) out[out.length - 1] = p;
    else out.push(p);
  }
  return out;
}

/** A lone step is drawn this many steps from either edge; a lone time this many ms. */
const LONE_STEP_PAD = 1;
const LONE_TIME_PAD_MS = 30_000;

/**
 * The x range a chart spans: the data's own, or, when every point has the
 * same x (one step reported so far), a window around it on whole steps (not
 * below step 0 for a step at 0) or on a minute of clock time. uPlot's own
 * fallback for such a range is 0 to 100, an axis that says nothing about
 * the point.
 */
export function xRange(min: number | null, max: number | null, kind: 'step' | 'time'): [number | null, number | null] {
  if (min === null || max === null || min !== max) return [min, max];
  if (kind === 'time') return [min - LONE_TIME_PAD_MS, min + LONE_TIME_PAD_MS];
  const low = min - LONE_STEP_PAD;
  return min >= 0 && low < 0 ? [0, 2 * LONE_STEP_PAD] : [low, min + LONE_STEP_PAD];
}

/** A line drawn against a scale shared with others must fill at least this part of it, or it gets a scale of its own. */
const MIN_FILL = 0.2;
/** More y axes than this crowd the plot: past it, a line shares the axis it fits best. */
const MAX_Y_AXES = 4;

interface Span {
  min: number;
  max: number;
}

/**
 * Which y axis each series is drawn against, by index (0: the left axis),
 * for lines of different metrics overlaid in one chart. Lines whose ranges
 * are alike share an axis; a line that would be flat against the others'
 * range (an accuracy in 0..1 beside a token count in 0..10,000) gets an
 * axis of its own, as Grafana gives series of other units their own. Each
 * line's values stay as reported (legend, table and ticks read them); only
 * where it is drawn changes.
 */
export function yAxisGroups(data: ReturnType<typeof alignedData>): number[] {
  const spans = data.slice(1).map((column) => spanOf(column as Array<number | null>));
  const groups: Span[] = [];
  return spans.map((span) => {
    if (span === null) return 0;
    let best = -1;
    let bestFill = 0;
    for (const [i, group] of groups.entries()) {
      const fill = sharedFill(group, span);
      if (fill > bestFill) [best, bestFill] = [i, fill];
    }
    if (best >= 0 && (bestFill >= MIN_FILL || groups.length >= MAX_Y_AXES)) {
      const group = groups[best]!;
      groups[best] = { min: Math.min(group.min, span.min), max: Math.max(group.max, span.max) };
      return best;
    }
    groups.push(span);
    return groups.length - 1;
  });
}

function spanOf(column: ReadonlyArray<number | null>): Span | null {
  let min = Infinity;
  let max = -Infinity;
  for (const v of column) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? { min, max } : null;
}

/** How much of a shared scale the flatter of the two would fill (1: both fill it all). */
function sharedFill(a: Span, b: Span): number {
  const whole = Math.max(a.max, b.max) - Math.min(a.min, b.min);
  if (whole === 0) return 1;
  return Math.min(extent(a), extent(b)) / whole;
}

/** A constant line counts by its size, so 0.5 joins 0.6 but not 1,000. */
function extent(s: Span): number {
  return s.max > s.min ? s.max - s.min : Math.abs(s.max) || 1;
}
