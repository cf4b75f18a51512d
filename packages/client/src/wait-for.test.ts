import { describe, expect, it } from 'vitest';
import { listenerLeakWarnings, waitUntil } from '@runtrail/test-support';
import { abortCallbackCount } from './on-abort.js';
import { WaitForTimeoutError, waitFor } from './wait-for.js';

describe('waitFor', () => {
  it('polls until the job is ready and returns its result, reporting each poll that was not ready', async () => {
    const polls: number[] = [];
    let calls = 0;
    const result = await waitFor(() => (++calls < 4 ? undefined : { output: 'image.png' }), {
      intervalMs: 10,
      timeoutMs: 5_000,
      onPoll: ({ attempt }) => polls.push(attempt),
    });
    expect(result).toEqual({ output: 'image.png' });
    expect(polls).toEqual([1, 2, 3]);
  });

  it('gives up at the deadline with a timeout naming what it waited for, and stops checking', async () => {
    let checks = 0;
    const err = await waitFor(() => (checks++, false), { intervalMs: 20, timeoutMs: 200, label: 'comfyui job 42' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitForTimeoutError);
    expect((err as WaitForTimeoutError).kind).toBe('timeout');
    expect((err as Error).message).toMatch(new RegExp(`^comfyui job 42 was not ready after 200 ms \\(${checks} checks\\)`));
    // At most one check per interval until the deadline, and none after it.
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks).toBeLessThanOrEqual(200 / 20 + 1);
    const after = checks;
    await new Promise((resolve) => setImmediate(resolve));
    expect(checks).toBe(after);
  });

  it('a check that hangs is cut by the deadline', async () => {
    const err = await waitFor(() => new Promise<never>(() => undefined), { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitForTimeoutError);
  });

  it('stops at once when its signal aborts, with the abort reason', async () => {
    const controller = new AbortController();
    const waiting = waitFor(() => null, { intervalMs: 60_000, timeoutMs: 120_000, signal: controller.signal });
    const reason = new Error('run cancelled');
    setTimeout(() => controller.abort(reason), 20);
    await expect(waiting).rejects.toBe(reason);
  });

  it('50 waits sharing one signal print no listener-leak warning and all stop at its abort; 200 that ended before leave nothing on it', async () => {
    const leaks = listenerLeakWarnings();
    try {
      const app = new AbortController();
      for (let i = 0; i < 200; i++) await waitFor((attempt) => attempt === 2, { intervalMs: 0, signal: app.signal });
      expect(abortCallbackCount(app.signal)).toBe(0);
      let checks = 0;
      const waits = Array.from({ length: 50 }, () => waitFor(() => (checks++, null), { intervalMs: 60_000, timeoutMs: 120_000, signal: app.signal }).catch((e: unknown) => e));
      await waitUntil(() => checks === 50, { what: 'every wait to check once' });
      const reason = new Error('the app is closing');
      app.abort(reason);
      expect(await Promise.all(waits)).toEqual(Array.from({ length: 50 }, () => reason));
      expect(abortCallbackCount(app.signal)).toBe(0);
      expect(await leaks.seen()).toEqual([]);
    } finally {
      leaks.stop();
    }
  });

  it('a check that throws fails the wait with that error', async () => {
    await expect(waitFor(() => Promise.reject(new Error('job failed on the backend')))).rejects.toThrow('job failed on the backend');
  });
});
