import { describe, expect, it } from 'vitest';
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

  it('gives up at the deadline with a timeout naming what it waited for', async () => {
    const started = Date.now();
    const err = await waitFor(() => false, { intervalMs: 20, timeoutMs: 200, label: 'comfyui job 42' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitForTimeoutError);
    expect((err as WaitForTimeoutError).kind).toBe('timeout');
    expect((err as Error).message).toMatch(/^comfyui job 42 was not ready after 200 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
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

  it('a check that throws fails the wait with that error', async () => {
    await expect(waitFor(() => Promise.reject(new Error('job failed on the backend')))).rejects.toThrow('job failed on the backend');
  });
});
