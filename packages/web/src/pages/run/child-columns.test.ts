import { initialSnapshot, type Run } from '@runtrail/protocol';
import { expect, test } from 'vitest';
import { availableColumns, sortRuns } from './child-columns.js';

function child(name: string, input: unknown, score: number | null): Run {
  const snapshot = initialSnapshot();
  if (score !== null) snapshot.metrics.score = { last: score, min: score, max: score, count: 1, step: 1, ts: 0, recent: [[1, score]] };
  return { id: name, name, input, status: 'succeeded', createdAt: 0, startedAt: 0, finishedAt: 10, snapshot } as unknown as Run;
}

test('children sort by a result column either way, with those that lack it last', () => {
  const runs = [child('a', { lr: 0.1 }, 0.5), child('b', { lr: 0.01 }, null), child('c', { lr: 0.001 }, 0.9)];
  const { inputs, results } = availableColumns(runs);
  expect(inputs.map((c) => c.title)).toEqual(['lr']);
  expect(results.map((c) => c.title)).toEqual(['score', 'score (min)', 'score (max)']);
  const score = results[0]!;
  expect(sortRuns(runs, score, 'ascending', 0).map((r) => r.name)).toEqual(['a', 'c', 'b']);
  expect(sortRuns(runs, score, 'descending', 0).map((r) => r.name)).toEqual(['c', 'a', 'b']);
  expect(sortRuns(runs, inputs[0]!, 'ascending', 0).map((r) => r.name)).toEqual(['c', 'b', 'a']);
});
