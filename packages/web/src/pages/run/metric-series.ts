import type { MetricSummary, Run, RunEvent, Snapshot } from '@runtrail/protocol';
import type { ChartSeries } from '../../components/chart-data.js';
import type { ChartX } from '../../components/LineChart.js';

/** One reported value: its step (the event's seq when the producer gave none, as the reducer does) and time. */
export interface MetricPoint {
  step: number;
  ts: number | null;
  value: number;
}

/**
 * Each metric's points from the events the page holds (every point, with its
 * time); a metric with none there (a long log of which the page kept only
 * the tail) falls back to the snapshot's recent points, which have no time.
 */
export function metricPoints(events: readonly RunEvent[], metrics: Snapshot['metrics']): Map<string, MetricPoint[]> {
  const byName = new Map<string, MetricPoint[]>();
  for (const e of events) {
    if (e.type !== 'metric') continue;
    const { name, value, step } = e.data as { name?: unknown; value?: unknown; step?: unknown };
    if (typeof name !== 'string' || typeof value !== 'number') continue;
    let points = byName.get(name);
    if (!points) byName.set(name, (points = []));
    points.push({ step: typeof step === 'number' ? step : e.seq, ts: e.ts, value });
  }
  for (const name of Object.keys(metrics)) {
    if (!byName.has(name)) byName.set(name, recentPoints(metrics[name]!));
  }
  return byName;
}

function recentPoints(summary: MetricSummary): MetricPoint[] {
  return summary.recent.map(([step, value]) => ({ step, ts: null, value }));
}

export function toSeries(label: string, points: readonly MetricPoint[], x: ChartX): ChartSeries {
  return {
    label,
    points: x === 'step' ? points.map((p) => [p.step, p.value] as const) : points.filter((p) => p.ts !== null).map((p) => [p.ts!, p.value] as const),
  };
}

/** Metric names any child reports, sorted. */
export function childMetricNames(children: readonly Run[]): string[] {
  const names = new Set<string>();
  for (const child of children) for (const name of Object.keys(child.snapshot.metrics)) names.add(name);
  return [...names].sort();
}

/** One line per child that reports `name`, over step (a child's recent points carry no time). */
export function seriesPerChild(children: readonly Run[], name: string): ChartSeries[] {
  const series: ChartSeries[] = [];
  for (const child of children) {
    const summary = Object.hasOwn(child.snapshot.metrics, name) ? child.snapshot.metrics[name]! : null;
    if (summary) series.push(toSeries(childLabel(child, children), recentPoints(summary), 'step'));
  }
  return series;
}

/** Children often share a name ("experiment"); the legend needs them apart. */
export function childLabel(child: Run, siblings: readonly Run[]): string {
  const same = siblings.filter((c) => c.name === child.name);
  return same.length > 1 ? `${child.name} #${same.indexOf(child) + 1}` : child.name;
}
