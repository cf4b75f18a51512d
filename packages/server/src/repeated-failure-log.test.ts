import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RepeatedFailureLog } from './repeated-failure-log.js';

/** A pino logger writing JSON lines into an array, with a clock the test moves. */
function setup(options: { level?: 'error' | 'warn' } = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  let now = 1_000_000;
  const log = new RepeatedFailureLog(pino({ level: 'info' }, sink), {
    failed: 'reaper sweep failed',
    recovered: 'reaper sweeps work again',
    now: () => now,
    ...options,
  });
  return { log, lines, advance: (ms: number) => (now += ms) };
}

const down = () => new Error('the database is unavailable (connect ECONNREFUSED 127.0.0.1:5432); retry shortly');

describe('RepeatedFailureLog', () => {
  it('logs a ten-minute outage retried every second as a handful of lines, not 600 stack traces', () => {
    const { log, lines, advance } = setup();
    for (let i = 0; i < 600; i++) {
      log.failed(down());
      advance(1000);
    }
    log.succeeded();
    // The first in full, a count each minute, the recovery.
    expect(lines.length).toBeLessThanOrEqual(12);
    expect(lines[0]).toMatchObject({ level: 50, msg: 'reaper sweep failed' });
    expect((lines[0]!.err as { stack: string }).stack).toContain('ECONNREFUSED');
    const repeats = lines.slice(1, -1);
    expect(repeats.length).toBeGreaterThanOrEqual(9);
    for (const line of repeats) {
      expect(line.level).toBe(40);
      expect(line.err).toBeUndefined();
      expect(line.msg).toMatch(/^reaper sweep failed again, \d+ more time\(s\) in the last 60 s \(\d+ in [\d.]+ s\): the database is unavailable \(connect ECONNREFUSED/);
    }
    expect(lines.at(-1)).toMatchObject({ level: 30, failures: 600, msg: 'reaper sweeps work again after 600 failure(s) over 600 s' });
  });

  it('takes one outage met by different calls (read, write, connect ECONNRESET) for one failure: logged once, then counted', () => {
    const { log, lines, advance } = setup();
    const calls = ['read ECONNRESET', 'connect ECONNRESET 127.0.0.1:47399', 'write ECONNRESET'];
    for (let i = 0; i < 120; i++) {
      log.failed(new Error(`the database is unavailable (${calls[i % 3]}); retry shortly`));
      advance(500);
    }
    log.succeeded();
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [50, 'reaper sweep failed'],
      [30, 'reaper sweeps work again after 120 failure(s) over 60 s'],
    ]);
    // A failure of another kind is still a new one.
    log.failed(new Error('the database is unavailable (read ECONNRESET); retry shortly'));
    log.failed(new Error('the database is unavailable (connect ECONNREFUSED 127.0.0.1:5432); retry shortly'));
    expect(lines.slice(2).map((l) => l.level)).toEqual([50, 50]);
  });

  it('logs a different failure in full, and says nothing on success when nothing failed', () => {
    const { log, lines, advance } = setup({ level: 'warn' });
    log.succeeded();
    expect(lines).toEqual([]);
    log.failed(down());
    advance(500);
    log.failed(new Error('canceling statement due to statement timeout'));
    expect(lines.map((l) => [l.level, l.msg, (l.err as { message: string }).message])).toEqual([
      [40, 'reaper sweep failed', down().message],
      [40, 'reaper sweep failed', 'canceling statement due to statement timeout'],
    ]);
    log.succeeded();
    log.succeeded();
    expect(lines.slice(2).map((l) => l.msg)).toEqual(['reaper sweeps work again after 2 failure(s) over 0.5 s']);
  });

  it('starts a new streak after a quiet minute, first counting the repeats it had not reported', () => {
    const { log, lines, advance } = setup();
    log.failed(down());
    for (let i = 0; i < 5; i++) {
      advance(1000);
      log.failed(down());
    }
    expect(lines).toHaveLength(1);
    // Requests have no success to report: the next outage's first failure comes a quiet minute later.
    advance(120_000);
    log.failed(down());
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [50, 'reaper sweep failed'],
      [40, `reaper sweep failed again, 5 more time(s) in the last 5 s (6 in 5 s): ${down().message}`],
      [50, 'reaper sweep failed'],
    ]);
  });
});
