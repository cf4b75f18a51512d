import type { RunEvent } from '@runtrail/protocol';
import { expect, test } from 'vitest';
import { axisSpan, callBars, endOpenBars, MAX_CALL_BARS, tickLabel, timeTicks, type TimelineBar } from './timeline.js';

const ev = (seq: number, type: string, ts: number, data: object): RunEvent => ({ runId: 'r', seq, type, ts, data });

test('a call is one bar from its start to its final outcome, a retried failure does not end it', () => {
  const { bars, total } = callBars([
    ev(1, 'call.started', 100, { callId: 'a', label: 'doc 1' }),
    ev(2, 'call.failed', 200, { callId: 'a', error: 'rate limited', willRetry: true }),
    ev(3, 'call.retried', 210, { callId: 'a', attempt: 2 }),
    ev(4, 'call.started', 150, { callId: 'b', label: 'doc 2' }),
    ev(5, 'call.succeeded', 400, { callId: 'a' }),
    ev(6, 'call.failed', 500, { callId: 'b', error: 'bad gateway', willRetry: false }),
    ev(7, 'call.started', 600, { callId: 'c', label: '' }),
  ]);
  expect(total).toBe(3);
  expect(bars.map((b) => [b.label, b.start, b.end, b.state, b.detail])).toEqual([
    ['doc 1', 100, 400, 'ok', '2 attempts'],
    ['doc 2', 150, 500, 'failed', 'bad gateway'],
    ['c', 600, null, 'running', null],
  ]);
});

test('a call or phase still open when the run ended stops at its end, unfinished; a child run keeps its own state', () => {
  const bar = (kind: TimelineBar['kind'], start: number, end: number | null): TimelineBar => ({
    key: `${kind}:${start}`,
    kind,
    label: kind,
    start,
    end,
    state: end === null ? 'running' : 'ok',
    detail: null,
  });
  const bars = [bar('phase', 0, null), bar('call', 100, 400), bar('call', 500, null), bar('child', 600, null)];
  expect(endOpenBars(bars, 8000).map((b) => [b.kind, b.start, b.end, b.state])).toEqual([
    ['phase', 0, 8000, 'unfinished'],
    ['call', 100, 400, 'ok'],
    ['call', 500, 8000, 'unfinished'],
    ['child', 600, null, 'running'],
  ]);
  expect(endOpenBars(bars, 8000)[2]!.detail).toBe('never finished: the run ended first');
  // A live run's open bars stay open.
  expect(endOpenBars(bars, null)).toEqual(bars);
});

test('a live axis ends at a round length just past the elapsed time', () => {
  expect(axisSpan(7300)).toBe(7500);
  expect(axisSpan(7600)).toBe(10_000);
  expect(axisSpan(10_000)).toBe(10_000);
  expect(axisSpan(120)).toBe(150);
  expect(axisSpan(0)).toBe(1);
});

test('axis ticks fall on round times, labelled as short as they can be', () => {
  expect(timeTicks(50_000).map(tickLabel)).toEqual(['0', '10 s', '20 s', '30 s', '40 s', '50 s']);
  expect(timeTicks(961).map(tickLabel)).toEqual(['0', '200 ms', '400 ms', '600 ms', '800 ms']);
  expect(timeTicks(7500).map(tickLabel)).toEqual(['0', '2 s', '4 s', '6 s']);
  expect(timeTicks(150_000).map(tickLabel)).toEqual(['0', '30 s', '1 m', '1 m 30 s', '2 m', '2 m 30 s']);
  expect(timeTicks(3 * 3_600_000).map(tickLabel)).toEqual(['0', '1 h', '2 h', '3 h']);
  expect(tickLabel(1500)).toBe('1.5 s');
  expect(timeTicks(0)).toEqual([0]);
});

test('a run with more calls than the waterfall draws keeps the latest, the one still running among them', () => {
  const n = MAX_CALL_BARS + 5;
  const events = Array.from({ length: n }, (_, i) => ev(i + 1, 'call.started', i, { callId: `c${i}`, label: `call ${i}` }));
  const { bars, total } = callBars(events);
  expect(total).toBe(n);
  expect(bars).toHaveLength(MAX_CALL_BARS);
  expect(bars[0]!.label).toBe('call 5');
  expect(bars.at(-1)!.label).toBe(`call ${n - 1}`);
});
