import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { MetricSummary } from '@runtrail/protocol';
import { formatNumber } from '../format.js';

const HEIGHT = 120;

/**
 * One metric's recent points as a small uPlot line. The chart is made once
 * and fed new data, so a run sending many metric events does not rebuild it.
 */
export function MetricChart({ name, metric }: { name: string; metric: MetricSummary }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const chart = new uPlot(
      {
        width: Math.max(160, el.clientWidth),
        height: HEIGHT,
        legend: { show: false },
        cursor: { show: true, drag: { x: false, y: false } },
        scales: { x: { time: false } },
        axes: [
          { stroke: 'currentColor', grid: { show: false }, size: 28 },
          { stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,0.2)' }, size: 48 },
        ],
        series: [{}, { label: name, stroke: '#3b82f6', width: 1.5, fill: 'rgba(59,130,246,0.12)', points: { show: false } }],
      },
      [[], []],
      el,
    );
    plot.current = chart;
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(160, el.clientWidth), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [name]);

  useEffect(() => {
    const xs = metric.recent.map((p) => p[0]);
    const ys = metric.recent.map((p) => p[1]);
    plot.current?.setData([xs, ys]);
  }, [metric.recent]);

  return (
    <figure className="metric" aria-label={`metric ${name}`}>
      <figcaption>
        <strong>{name}</strong>
        <span className="metric-last" data-testid={`metric-${name}`}>
          {formatNumber(metric.last)}
        </span>
        <span className="muted">
          min {formatNumber(metric.min)} · max {formatNumber(metric.max)} · {metric.count} points
        </span>
      </figcaption>
      <div ref={box} className="metric-plot" role="img" aria-label={`chart of ${name}, last value ${formatNumber(metric.last)}`} />
    </figure>
  );
}
