import { expect, test } from 'vitest';
import { alignedData, sortedByX, xRange, yAxisGroups } from './chart-data.js';

test('points that arrive out of order are drawn in step order', () => {
  expect(sortedByX([[3, 0.3], [1, 0.1], [2, 0.2]])).toEqual([[1, 0.1], [2, 0.2], [3, 0.3]]);
});

test('several series share one ascending x column, with gaps where a series has no point', () => {
  expect(
    alignedData([
      { label: 'a', points: [[2, 20], [1, 10]] },
      { label: 'b', points: [[3, 300], [2, 200], [2, 201]] },
    ]),
  ).toEqual([
    [1, 2, 3],
    [10, 20, null],
    [null, 201, 300],
  ]);
});

test('a lone point gets an axis around it: whole steps either side (not below step 0), or a minute of time', () => {
  expect(xRange(7, 7, 'step')).toEqual([6, 8]);
  expect(xRange(0, 0, 'step')).toEqual([0, 2]);
  expect(xRange(-3, -3, 'step')).toEqual([-4, -2]);
  expect(xRange(60_000, 60_000, 'time')).toEqual([30_000, 90_000]);
  // Several points, or none: the data's own range.
  expect(xRange(1, 5, 'step')).toEqual([1, 5]);
  expect(xRange(null, null, 'time')).toEqual([null, null]);
});

const columns = (...ys: Array<Array<number | null>>) => [ys[0]!.map((_, i) => i), ...ys] as ReturnType<typeof alignedData>;

test('overlaid metrics of like ranges share the left axis; one that would be flat against them gets its own', () => {
  const loss = [1, 0.5, 0.33, 0.25, 0.2];
  const accuracy = [0.55, 0.6, 0.65, 0.7, 0.75];
  expect(yAxisGroups(columns(accuracy, loss))).toEqual([0, 0]);
  const tokens = [0, 2500, 5000, 7500, 10_000];
  expect(yAxisGroups(columns(accuracy, tokens, loss))).toEqual([0, 1, 0]);
  // Close magnitudes are not enough: 1,000..1,001 is a flat line on 0..10,000.
  expect(yAxisGroups(columns(tokens, [1000, 1000.5, 1001, 1000.2, 1000.7]))).toEqual([0, 1]);
  // Constant lines join a scale of their size, not one a thousand times larger.
  expect(yAxisGroups(columns([0.5, 0.5], [0.6, 0.6], [1000, 1000]))).toEqual([0, 0, 1]);
  // A line with no values yet draws against the left axis.
  expect(yAxisGroups(columns([1, 2], [null, null]))).toEqual([0, 0]);
});

test('past four scales a line shares the one it fits best instead of adding a fifth axis', () => {
  const groups = yAxisGroups(columns([0, 1], [0, 1e3], [0, 1e6], [0, 1e9], [0, 1e12], [0, 2]));
  expect(groups).toEqual([0, 1, 2, 3, 3, 0]);
});
