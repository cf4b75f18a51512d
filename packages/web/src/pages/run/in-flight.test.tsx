import { renderToStaticMarkup } from 'react-dom/server';
import { expect, test } from 'vitest';
import { SNAPSHOT_LIMITS, foldEvents, type RunEvent, type Snapshot } from '@runtrail/protocol';
import { InFlight } from './InFlight.js';

const n = SNAPSHOT_LIMITS.inFlight;
let seq = 0;
const call = (type: 'call.started' | 'call.succeeded', i: number): RunEvent => ({
  runId: 'r1',
  seq: ++seq,
  ts: 1000 + seq,
  type,
  data: type === 'call.started' ? { callId: `c${i}`, label: `doc ${i}` } : { callId: `c${i}` },
});
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
const text = (html: string) => html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
const title = (snapshot: Snapshot) => /<h2 id="inflight-title">(.*?)<\/h2>/.exec(renderToStaticMarkup(<InFlight snapshot={snapshot} />))?.[1]?.replace(/<!-- -->/g, '');

test('once every listed call has ended, the calls still in flight that were never listed are counted, not "No calls running"', () => {
  seq = 0;
  // 1,005 started (5 not listed), then the 1,000 listed ones end: 5 in flight, none listed.
  const s = foldEvents([...range(0, n + 5).map((i) => call('call.started', i)), ...range(0, n).map((i) => call('call.succeeded', i))]);
  expect(title(s)).toBe('In flight (5; 0 listed)');
  const html = text(renderToStaticMarkup(<InFlight snapshot={s} />));
  expect(html).toContain('The 5 not listed here started while 1,000 others were');
  expect(html).not.toContain('No calls running');
});

test('a snapshot stored before runtrail counted unlisted calls shows the calls it lists', () => {
  seq = 0;
  const s = foldEvents(range(0, 3).map((i) => call('call.started', i)));
  expect(s.counters).not.toHaveProperty('inFlight');
  expect(title(s)).toBe('In flight (3)');
});
