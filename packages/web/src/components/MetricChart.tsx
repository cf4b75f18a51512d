import { useMemo } from 'react';
import type { MetricSummary } from '@runtrail/protocol';
import { formatNumber } from '../format.js';
import type { ChartSeries } from './chart-data.js';
import { LineChart, type ChartX } from './LineChart.js';
import { visibleText } from '../visible-text.js';

/**
 * One metric: its last value, range and how many values were reported, and
 * its line (a step reported twice is drawn once, so its data table may hold
 * fewer points than values; on a long run, the values among the events the
 * page holds, which the caption counts).
 */
export function MetricChart({ name, metric, series, x }: { name: string; metric: MetricSummary; series: ChartSeries; x: ChartX }) {
  const lines = useMemo(() => [series], [series]);
  return (
    <figure className="metric" aria-label={`metric ${name}`}>
      <figcaption>
        <strong>{visibleText(name)}</strong>
        <span className="metric-last" data-testid={`metric-${name}`}>
          {formatNumber(metric.last)}
        </span>
        <span className="muted">
          min {formatNumber(metric.min)} · max {formatNumber(metric.max)} · {formatNumber(metric.count)} {metric.count === 1 ? 'value' : 'values'}
          {/* A long run's page holds only its latest events: the line is their part of the metric, and says so. */}
          {series.points.length < metric.count && ` · the latest ${formatNumber(series.points.length)} drawn`}
        </span>
      </figcaption>
      <LineChart series={lines} x={x} label={`chart of ${name} over ${x}, last value ${formatNumber(metric.last)}`} />
    </figure>
  );
}
