import { useEffect, useMemo, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { countOf, formatNumber, formatTick } from '../format.js';
import { alignedData, seriesColour, type ChartSeries } from './chart-data.js';
import { visibleText } from '../visible-text.js';

export type ChartX = 'step' | 'time';

/** Steps are counted: ticks at whole steps (1, 2, 5, 10, …), never at 1.2 or 2.4. */
const STEP_INCREMENTS = Array.from({ length: 16 }, (_, i) => [1, 2, 5].map((m) => m * 10 ** i)).flat();

/** Clock ticks land on whole seconds, minutes or hours: labels to the second never repeat (12:00:01, 12:00:01). */
const TIME_INCREMENTS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400].map((s) => s * 1000);

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

/** uPlot's own axis font, named so the y axis can be measured in it. */
const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif';
let measurer: CanvasRenderingContext2D | null = null;

/**
 * The y axis as wide as its widest label plus uPlot's tick (10 px) and gap
 * (5 px), at least 56 px: a fixed width cut 0.000085 to "000085" at the
 * chart's left edge. Measured on a canvas of its own, since uPlot caches
 * the font it last set on the chart's.
 */
function yAxisSize(_u: uPlot, values: string[] | null): number {
  measurer ??= document.createElement('canvas').getContext('2d');
  if (!measurer || !values) return 56;
  measurer.font = AXIS_FONT;
  const widest = Math.max(0, ...values.map((v) => measurer!.measureText(v).width));
  return Math.max(56, Math.ceil(widest + 10 + 5 + 2));
}

/**
 * Lines over step or time (x in ms since the epoch), drawn by uPlot: points
 * ordered by x, one colour per series with a legend when there are several
 * (clicking a legend entry hides that line), axes with the precision their
 * tick spacing needs. The numbers drawn are also offered as a table, for
 * readers who cannot see the plot or want the exact values.
 */
export function LineChart({ series, x, label, height = 180 }: { series: readonly ChartSeries[]; x: ChartX; label: string; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useMemo(() => alignedData(series), [series]);
  const shape = `${x}|${series.map((s) => s.label).join('\u0000')}`;

  // The chart is made when its shape changes (axis kind, which lines) and
  // otherwise fed new data, so a run sending many metric events does not rebuild it.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const several = series.length > 1;
    const chart = new uPlot(
      {
        width: Math.max(160, el.clientWidth),
        height,
        legend: { show: several, live: several },
        cursor: { show: true, drag: { x: false, y: false } },
        scales: { x: { time: false } },
        axes: [
          {
            stroke: 'currentColor',
            grid: { show: false },
            size: 30,
            space: x === 'time' ? 70 : 50,
            incrs: x === 'step' ? STEP_INCREMENTS : TIME_INCREMENTS,
            values: (_u, splits, _axis, _space, incr) =>
              drawn(el, 'xTicks', splits.map((v) => (x === 'time' ? TIME_FORMAT.format(v) : formatTick(v, incr)))),
          },
          {
            stroke: 'currentColor',
            grid: { stroke: 'rgba(128,128,128,0.2)' },
            font: AXIS_FONT,
            size: yAxisSize,
            // Ticks every 28 px or more: a 180 px chart reads at 4-6 values, not 2.
            space: 28,
            values: (_u, splits, _axis, _space, incr) => drawn(el, 'yTicks', splits.map((v) => formatTick(v, incr))),
          },
        ],
        series: [
          { label: x, value: (_u, v) => (v === null ? '–' : x === 'time' ? TIME_FORMAT.format(v) : formatNumber(v)) },
          ...series.map((s, i) => ({
            label: visibleText(s.label),
            stroke: seriesColour(i),
            width: 1.5,
            spanGaps: true,
            fill: several ? undefined : 'rgba(59,130,246,0.12)',
            value: (_u: uPlot, v: number | null) => (v === null ? '–' : formatNumber(v)),
          })),
        ],
      },
      [[]],
      el,
    );
    plot.current = chart;
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(160, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // `series` is read for its labels only, which `shape` covers.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data, shape]);

  return (
    <>
      <div ref={box} className="chart-plot" role="img" aria-label={label} />
      <ChartTable series={series} data={data} x={x} />
    </>
  );
}

/**
 * The tick labels drawn on the canvas, also kept on the chart's element
 * (`data-x-ticks`, `data-y-ticks`, joined by " | ") where text tools and
 * tests can read what the reader sees.
 */
function drawn(el: HTMLElement, axis: 'xTicks' | 'yTicks', labels: string[]): string[] {
  el.dataset[axis] = labels.join(' | ');
  return labels;
}

/** The drawn numbers as a table, built only when opened (a chart may hold thousands of points). */
function ChartTable({ series, data, x }: { series: readonly ChartSeries[]; data: ReturnType<typeof alignedData>; x: ChartX }) {
  const [open, setOpen] = useState(false);
  return (
    <details className="chart-data" onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Data ({countOf(data[0].length, 'point')})</summary>
      {open && (
        <div className="chart-table-wrap">
          <table className="chart-table">
            <thead>
              <tr>
                <th scope="col">{x}</th>
                {series.map((s) => (
                  <th key={s.label} scope="col">
                    {visibleText(s.label)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {data[0].map((xv, row) => (
                <tr key={xv}>
                  <td data-x={xv}>{x === 'time' ? TIME_FORMAT.format(xv) : formatNumber(xv)}</td>
                  {series.map((s, col) => {
                    const v = data[col + 1]![row];
                    return <td key={s.label}>{v === null || v === undefined ? '' : formatNumber(v)}</td>;
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </details>
  );
}
