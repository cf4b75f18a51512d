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
