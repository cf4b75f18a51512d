import { useEffect, useMemo, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { countOf, formatNumber, formatTick } from '../format.js';
import { alignedData, seriesColour, xRange, yAxisGroups, type ChartSeries } from './chart-data.js';
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

/** An axis's name, cut to fit beside the plot (the legend has the whole name). */
const MAX_AXIS_LABEL = 28;

/**
 * Lines over step or time (x in ms since the epoch), drawn by uPlot: points
 * ordered by x, one colour per series with a legend when there are several
 * (clicking a legend entry hides that line), axes with the precision their
 * tick spacing needs. The numbers drawn are also offered as a table, for
 * readers who cannot see the plot or want the exact values.
 *
 * `yAxes`: 'shared' (one metric compared across runs: one scale, or the
 * comparison would lie) or 'by-range' (different metrics: lines of unlike
 * ranges get a y axis each, on the right, named and coloured as their
 * lines; see yAxisGroups).
 */
export function LineChart({
  series,
  x,
  label,
  height = 180,
  yAxes = 'shared',
}: {
  series: readonly ChartSeries[];
  x: ChartX;
  label: string;
  height?: number;
  yAxes?: 'shared' | 'by-range';
}) {
  const box = useRef<HTMLDivElement>(null);
  const legendBox = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useMemo(() => alignedData(series), [series]);
  const groups = useMemo(() => (yAxes === 'by-range' ? yAxisGroups(data) : series.map(() => 0)), [data, yAxes, series]);
  // Which axis a line uses is part of the chart's make-up: a line moving to another axis rebuilds it.
  const shape = `${x}|${series.map((s) => s.label).join('\u0000')}|${groups.join(',')}`;

  // The chart is made when its shape changes (axis kind, which lines) and
  // otherwise fed new data, so a run sending many metric events does not rebuild it.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    // An axis the rebuilt chart no longer has must not go on reporting its old ticks.
    for (const key of Object.keys(el.dataset)) if (/^y\d*Ticks$/.test(key)) delete el.dataset[key];
    const several = series.length > 1;
    const chart = new uPlot(
      {
        width: Math.max(160, el.clientWidth),
        height,
        // Outside the plot's box: an image's content is hidden from assistive tech, and the legend is a set of controls.
        legend: { show: several, live: several, mount: (_u, table) => legendBox.current?.append(table) },
        hooks: { setSeries: [(u) => syncLegend(u, legendBox.current)] },
        cursor: { show: true, drag: { x: false, y: false } },
        // uPlot pads a lone x by itself (to 0..10 for step 7) before asking: the data says whether it is one.
        scales: {
          x: { time: false, range: (u, min, max) => (u.data[0].length === 1 ? xRange(u.data[0][0]!, u.data[0][0]!, x) : [min, max]) },
          ...Object.fromEntries(Array.from({ length: Math.max(0, ...groups) + 1 }, (_, group) => [scaleKey(group), { range: yRange }])),
        },
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
          ...yAxisOptions(el, series, groups),
        ],
        series: [
          { label: x, value: (_u, v) => (v === null ? '–' : x === 'time' ? TIME_FORMAT.format(v) : formatNumber(v)) },
          ...series.map((s, i) => ({
            label: visibleText(s.label),
            scale: scaleKey(groups[i]!),
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
    const unkeyed = several ? keyboardLegend(chart, legendBox.current) : () => {};
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(160, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      unkeyed();
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
      <div ref={legendBox} className="chart-legend" />
      <ChartTable series={series} data={data} x={x} />
    </>
  );
}

/** The legend's row of each line (uPlot's row i is series i; row 0, the x value, is no line). */
function legendLines(box: HTMLElement | null): HTMLElement[] {
  return box ? [...box.querySelectorAll<HTMLElement>('.u-series > th')].slice(1) : [];
}

/**
 * A legend entry hides or shows its line on a click; from the keyboard it
 * is a checkbox (Tab to it, Space or Enter) saying whether the line is
 * shown. Returns what undoes it.
 */
function keyboardLegend(chart: uPlot, box: HTMLElement | null): () => void {
  const table = box?.querySelector('table');
  // A layout table: its rows are the lines' checkboxes, not data to be read as a grid.
  table?.setAttribute('role', 'presentation');
  const onKey = (e: KeyboardEvent) => {
    if (e.key !== ' ' && e.key !== 'Enter') return;
    e.preventDefault();
    (e.currentTarget as HTMLElement).click();
  };
  const entries = legendLines(box);
  for (const entry of entries) {
    entry.tabIndex = 0;
    entry.setAttribute('role', 'checkbox');
    entry.addEventListener('keydown', onKey);
  }
  syncLegend(chart, box);
  return () => {
    for (const entry of entries) entry.removeEventListener('keydown', onKey);
  };
}

/** Each legend checkbox says whether its line is shown (after a click, a key or at the start). */
function syncLegend(chart: uPlot, box: HTMLElement | null): void {
  legendLines(box).forEach((entry, i) => entry.setAttribute('aria-checked', String(chart.series[i + 1]?.show !== false)));
}

/**
 * uPlot's own y range (its default, `rangeNum` padded by a tenth), except
 * for lines flat at 0 (a count of errors that stayed at none), which it
 * draws on 0 to 100, an axis that reads as a percentage: on 0 to 1 instead.
 */
function yRange(_u: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax {
  if (min === null || max === null) return [min, max];
  return min === 0 && max === 0 ? [0, 1] : uPlot.rangeNum(min, max, 0.1, true);
}

/** The scale of y axis `group`: 'y' for the first, as uPlot names it, then 'y2', 'y3', … */
function scaleKey(group: number): string {
  return group === 0 ? 'y' : `y${group + 1}`;
}

/**
 * One y axis per group of lines: the first on the left, the others on the
 * right with no grid of their own (two grids would not line up). With more
 * than one axis each is named after its lines and, when it has one line,
 * drawn in that line's colour, so the reader can tell which scale a line is
 * read against.
 */
function yAxisOptions(el: HTMLElement, series: readonly ChartSeries[], groups: readonly number[]): uPlot.Axis[] {
  const count = Math.max(0, ...groups) + 1;
  const names: string[] = [];
  const axes = Array.from({ length: count }, (_, group): uPlot.Axis => {
    const members = series.flatMap((s, i) => (groups[i] === group ? [i] : []));
    const colour = count > 1 && members.length === 1 ? seriesColour(members[0]!) : 'currentColor';
    const name = members.map((i) => visibleText(series[i]!.label)).join(', ');
    names.push(name);
    const tickKey = group === 0 ? 'yTicks' : `y${group + 1}Ticks`;
    return {
      scale: scaleKey(group),
      side: group === 0 ? 3 : 1,
      stroke: colour,
      grid: group === 0 ? { stroke: 'rgba(128,128,128,0.2)' } : { show: false },
      font: AXIS_FONT,
      size: yAxisSize,
      // Ticks every 28 px or more: a 180 px chart reads at 4-6 values, not 2.
      space: 28,
      ...(count > 1 ? { label: name.length > MAX_AXIS_LABEL ? `${name.slice(0, MAX_AXIS_LABEL - 1)}…` : name, labelSize: 18, labelFont: AXIS_FONT } : {}),
      values: (_u: uPlot, splits: number[], _axis: number, _space: number, incr: number) => drawn(el, tickKey, splits.map((v) => formatTick(v, incr))),
    };
  });
  // The axes' names are drawn on the canvas: kept on the element too, as the ticks are (see drawn).
  if (count > 1) el.dataset.yAxes = names.join(' | ');
  else delete el.dataset.yAxes;
  return axes;
}

/**
 * The tick labels drawn on the canvas, also kept on the chart's element
 * (`data-x-ticks`, `data-y-ticks`, and `data-y2-ticks`, … for more y
 * axes; joined by " | ") where text tools and
 * tests can read what the reader sees.
 */
function drawn(el: HTMLElement, axis: string, labels: string[]): string[] {
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
