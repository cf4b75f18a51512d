import { memo, useMemo, useRef, useState } from 'react';
import type { MetricSummary, Run, RunEvent, Snapshot } from '@runtrail/protocol';
import type { ChartSeries } from '../../components/chart-data.js';
import { LineChart, type ChartX } from '../../components/LineChart.js';
import { MetricChart } from '../../components/MetricChart.js';
import { formatNumber } from '../../format.js';
import { childLabel, childMetricNames, metricPoints, seriesPerChild, toSeries } from './metric-series.js';
import { visibleText } from '../../visible-text.js';
import './run-insights.css';

/**
 * The run's metrics over step or time, one chart each or overlaid in one;
 * on a parent run, a metric compared across its children (an objective
 * per experiment).
 */
export const Metrics = memo(function Metrics({
  metrics,
  metricEvents,
  children,
  childCount,
}: {
  metrics: Snapshot['metrics'];
  /** The metric events the page holds: the same array while no metric arrives, so the panel's memo holds. */
  metricEvents: readonly RunEvent[];
  children: readonly Run[];
  /** How many children the run has in all; more than `children` when the page watches only the latest. */
  childCount: number;
}) {
  const [x, setX] = useState<ChartX>('step');
  const [overlay, setOverlay] = useState(false);
  const names = useMemo(() => Object.keys(metrics).sort(), [metrics]);
  const series = useMetricSeries(names, metrics, metricEvents, x);
  const compared = childMetricNames(children);
  if (names.length === 0 && compared.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="metrics-title">
      <div className="panel-head">
        <h2 id="metrics-title">Metrics</h2>
        {names.length > 0 && (
          <div className="chart-controls">
            <fieldset className="segmented">
              <legend>x axis</legend>
              {(['step', 'time'] as const).map((kind) => (
                <label key={kind}>
                  <input type="radio" name="metrics-x" value={kind} checked={x === kind} onChange={() => setX(kind)} /> {kind}
                </label>
              ))}
            </fieldset>
            {names.length > 1 && (
              <label>
                <input type="checkbox" checked={overlay} onChange={(e) => setOverlay(e.target.checked)} /> overlay
              </label>
            )}
          </div>
        )}
      </div>
      {names.length > 0 &&
        (overlay && names.length > 1 ? (
          <figure className="metric" aria-label="metrics overlaid">
            <LineChart series={series} x={x} height={220} yAxes="by-range" label={`chart of ${names.join(', ')} over ${x}`} />
          </figure>
        ) : (
          <div className="metrics">
            {names.map((name, i) => (
              <MetricChart key={name} name={name} metric={metrics[name]!} series={series[i]!} x={x} />
            ))}
          </div>
        ))}
      {compared.length > 0 && <ChildrenComparison children={children} childCount={childCount} names={compared} />}
    </section>
  );
});

/**
 * Each metric's line, rebuilt only when that metric changed (its summary in
 * the snapshot is a new object exactly then): most events are not metrics,
 * and redrawing every chart at each of them kept a busy run's page busy.
 * Also once when the page's first metric events arrive: a long run's page
 * shows the stored snapshot first and reads the events it keeps after it,
 * with no change to the snapshot.
 */
function useMetricSeries(names: string[], metrics: Snapshot['metrics'], events: readonly RunEvent[], x: ChartX): ChartSeries[] {
  const cache = useRef(new Map<string, { summary: MetricSummary; x: ChartX; held: boolean; series: ChartSeries }>());
  const last = useRef<ChartSeries[]>([]);
  const held = events.length > 0;
  const stale = names.filter((name) => {
    const hit = cache.current.get(name);
    return !hit || hit.summary !== metrics[name] || hit.x !== x || hit.held !== held;
  });
  if (stale.length > 0) {
    const points = metricPoints(events, metrics);
    for (const name of stale) cache.current.set(name, { summary: metrics[name]!, x, held, series: toSeries(name, points.get(name) ?? [], x) });
  }
  const next = names.map((name) => cache.current.get(name)!.series);
  if (next.length !== last.current.length || next.some((s, i) => s !== last.current[i])) last.current = next;
  return last.current;
}

function ChildrenComparison({ children, childCount, names }: { children: readonly Run[]; childCount: number; names: string[] }) {
  const [chosen, setChosen] = useState<string | null>(null);
  const name = chosen !== null && names.includes(chosen) ? chosen : names[0]!;
  const series = useMemo(() => seriesPerChild(children, name), [children, name]);
  return (
    <figure className="metric compare" aria-label="metric per child run">
      <figcaption>
        <label>
          <strong>Compare across child runs: </strong>
          <select aria-label="metric to compare across child runs" value={name} onChange={(e) => setChosen(e.target.value)}>
            {names.map((n) => (
              <option key={n} value={n}>
                {visibleText(n)}
              </option>
            ))}
          </select>
        </label>
        <span className="muted">
          {childCount > children.length ? `the latest ${formatNumber(series.length)} of ${formatNumber(childCount)}` : series.length} child runs
        </span>
      </figcaption>
      <LastValueBars children={children} name={name} />
      {series.some((s) => s.points.length > 1) && (
        <LineChart series={series} x="step" height={220} label={`chart of ${name} per child run over step`} />
      )}
    </figure>
  );
}

/** Each child's latest value of the metric as a bar: the comparison an autotune reader wants first. */
function LastValueBars({ children, name }: { children: readonly Run[]; name: string }) {
  const rows = children.flatMap((child) =>
    Object.hasOwn(child.snapshot.metrics, name) ? [{ child, value: child.snapshot.metrics[name]!.last }] : [],
  );
  const low = Math.min(0, ...rows.map((r) => r.value));
  const high = Math.max(0, ...rows.map((r) => r.value));
  const span = high - low || 1;
  return (
    <ol className="value-bars" aria-label={`latest ${name} per child run`}>
      {rows.map(({ child, value }) => (
        <li key={child.id} data-run-id={child.id}>
          <span className="value-bar-name">{visibleText(childLabel(child, children))}</span>
          <span className="value-bar-track">
            <span
              className="value-bar"
              style={{ left: `${((Math.min(0, value) - low) / span) * 100}%`, width: `${(Math.abs(value) / span) * 100}%` }}
            />
          </span>
          <span className="value-bar-value">{formatNumber(value)}</span>
        </li>
      ))}
    </ol>
  );
}
