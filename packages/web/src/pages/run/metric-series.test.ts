import { initialSnapshot, type Run, type RunEvent } from '@runtrail/protocol';
import { expect, test } from 'vitest';
import { alignedData } from '../../components/chart-data.js';
import { childLabel, metricPoints, toSeries } from './metric-series.js';

const metric = (seq: number, ts: number, data: object): RunEvent => ({ runId: 'r', seq, type: 'metric', ts, data });

test("a metric's points keep their step and time; one without a step takes its event's seq, as the reducer does", () => {
  const points = metricPoints(
    [metric(1, 1000, { name: 'loss', value: 0.5, step: 3 }), metric(2, 2000, { name: 'loss', value: 0.9, step: 1 }), metric(3, 3000, { name: 'acc', value: 0.7 })],
    initialSnapshot().metrics,
  );
  expect(points.get('loss')).toEqual([
    { step: 3, ts: 1000, value: 0.5 },
    { step: 1, ts: 2000, value: 0.9 },
  ]);
  expect(points.get('acc')).toEqual([{ step: 3, ts: 3000, value: 0.7 }]);
  // Drawn in step order over step, in time order over time.
  expect(alignedData([toSeries('loss', points.get('loss')!, 'step')])).toEqual([[1, 3], [0.9, 0.5]]);
  expect(alignedData([toSeries('loss', points.get('loss')!, 'time')])).toEqual([[1000, 2000], [0.5, 0.9]]);
});

test('children that share a name are numbered in the order they were created; a unique name stays as it is', () => {
  const run = (id: string, name: string) => ({ id, name }) as Run;
  const children = [run('a', 'experiment'), run('b', 'baseline'), run('c', 'experiment')];
  expect(children.map((c) => childLabel(c, children))).toEqual(['experiment #1', 'baseline', 'experiment #2']);
});
