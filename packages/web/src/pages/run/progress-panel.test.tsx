import { renderToStaticMarkup } from 'react-dom/server';
import { expect, test } from 'vitest';
import { foldEvents, type RunEvent } from '@runtrail/protocol';
import { formatDuration } from '../../format.js';
import { ClockContext, stoppedClock } from '../../use-now.js';
import { ProgressPanel } from './ProgressPanel.js';

const startedAt = 1_000_000;
const progress = (seq: number, ts: number, done: number): RunEvent => ({ runId: 'r1', seq, ts, type: 'progress', data: { done, total: 64 } });
// Three readings a second apart, then nothing: quiet far past five of its intervals and the 30 s floor.
const events = [progress(1, startedAt + 1000, 1), progress(2, startedAt + 2000, 2), progress(3, startedAt + 3000, 3)];
const now = startedAt + 3000 + 120_000;
const eta = (html: string) => /data-testid="eta"[^>]*>(.*?)<\/span>/.exec(html)?.[1]?.replace(/<!-- -->/g, '');

test('a run only this page finds quiet says "no progress for", as the list does; "stalled" is the server\'s word', () => {
  const snapshot = foldEvents(events);
  expect(snapshot.stalled).toBeNull();
  const html = renderToStaticMarkup(
    <ClockContext value={stoppedClock(now)}>
      <ProgressPanel snapshot={snapshot} events={events} status="running" startedAt={startedAt} />
    </ClockContext>,
  );
  expect(eta(html)).toBe(` · no progress for ${formatDuration(120_000)}`);
});

test('a run the server found stalled says so', () => {
  const withStall = [...events, { runId: 'r1', seq: 4, ts: startedAt + 4000, type: 'run.stalled', data: { lastProgressAt: startedAt + 3000, stallTimeoutMs: 1000 } }];
  const snapshot = foldEvents(withStall);
  expect(snapshot.stalled).not.toBeNull();
  const html = renderToStaticMarkup(
    <ClockContext value={stoppedClock(now)}>
      <ProgressPanel snapshot={snapshot} events={withStall} status="running" startedAt={startedAt} />
    </ClockContext>,
  );
  expect(eta(html)).toBe(` · stalled: no progress for ${formatDuration(120_000)}`);
});
