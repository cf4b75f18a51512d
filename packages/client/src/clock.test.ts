import { afterEach, describe, expect, test, vi } from 'vitest';
import { longTimeout, MAX_TIMER_MS, systemClock } from './clock.js';

// Node's own timers, faked: 25 days cannot be waited for. What is tested is the re-arming, which is ours.
afterEach(() => vi.useRealTimers());

describe('longTimeout', () => {
  test('a delay past 2^31-1 ms fires when it is due, not after 1 ms as setTimeout does', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const days25 = 25 * 24 * 3600_000;
    longTimeout(fired, days25);
    vi.advanceTimersByTime(1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(days25 - MAX_TIMER_MS - 2);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  test('clear() stops it in any step, and the SDK clock (watchers, give-up, heartbeats) uses it', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const timer = longTimeout(fired, 3 * MAX_TIMER_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS + 5);
    timer.clear();
    vi.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();

    const gaveUp = vi.fn();
    systemClock.setTimeout(gaveUp, 30 * 24 * 3600_000);
    vi.advanceTimersByTime(1);
    expect(gaveUp).not.toHaveBeenCalled();
  });
});
