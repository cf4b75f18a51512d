import { afterEach, describe, expect, it, vi } from 'vitest';
import { RuntrailError } from '@runtrail/protocol';
import { retrying } from './backoff.js';
import type { Clock } from './clock.js';

/** A clock whose timers fire at once, moving its time on by their delay: the waits of a retry loop, without waiting. */
function virtualClock(): Clock & { waits: number[] } {
  let now = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    setTimeout: (fn, ms) => {
      waits.push(ms);
      queueMicrotask(() => {
        now += ms;
        fn();
      });
      return null;
    },
    clearTimeout: () => {},
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('retrying', () => {
  it('never waits past forMs: the last attempt is made at its end, not a backoff later', async () => {
    // The longest jitter every time: waits of 49, 99, 199, 399 ms, then 799 would end at 1,545 ms.
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const clock = virtualClock();
    const attemptsAt: number[] = [];
    const unavailable = new RuntrailError('unavailable', 'cannot reach the runtrail server');
    await expect(
      retrying(
        async () => {
          attemptsAt.push(clock.now());
          throw unavailable;
        },
        1000,
        clock,
      ),
    ).rejects.toBe(unavailable);
    // Before, the exit worker's retries (producer.exitTimeoutMs) ran up to 2 s past their deadline, and the process
    // had stopped waiting for its answer by then.
    expect(attemptsAt).toEqual([0, 49, 148, 347, 746, 1000]);
    expect(clock.waits.at(-1)).toBe(254);
  });

  it("waits out a 503's Retry-After within forMs", async () => {
    const clock = virtualClock();
    let attempts = 0;
    const answer = await retrying(
      async () => {
        if (++attempts === 1) {
          const restarting = new RuntrailError('unavailable', 'restarting');
          restarting.retryAfterMs = 300;
          throw restarting;
        }
        return 'stored';
      },
      1000,
      clock,
    );
    expect(answer).toBe('stored');
    expect(clock.waits).toEqual([300]);
  });
});
