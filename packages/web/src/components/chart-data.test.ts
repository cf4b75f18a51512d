import { expect, test } from 'vitest';
import { alignedData, sortedByX } from './chart-data.js';

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
