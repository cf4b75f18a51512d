import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Helpers shared by the test suites. Tests wait for conditions with a
 * deadline; they never sleep and hope.
 */

export function tempDir(prefix = 'runtrail-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Poll `probe` until it returns something other than undefined, null or
 * false, or fail at the deadline saying what was awaited. A probe that
 * throws is retried (the thing it probes may be coming up, e.g. a server
 * restarting); its last error goes into the timeout message.
 */
export async function waitUntil<T>(
  probe: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, undefined | null | false>;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
}

/** `waitUntil` polling every 5 ms: stream tests wait for many short steps, and a 20 ms poll adds up. */
export async function waitFor(cond: () => boolean | Promise<boolean>, options: { timeoutMs?: number; what?: string } = {}): Promise<void> {
  await waitUntil(cond, { intervalMs: 5, ...options });
}

/**
 * Node's "Possible EventTarget memory leak detected" warnings
 * (MaxListenersExceededWarning, what a user sees on stderr) emitted from
 * now until `stop()`. Node emits a warning on a later tick than the
 * listener that caused it: `seen()` lets those already due arrive first.
 */
export function listenerLeakWarnings(): { seen(): Promise<string[]>; stop(): void } {
  const messages: string[] = [];
  const onWarning = (warning: Error) => {
    if (warning.name === 'MaxListenersExceededWarning') messages.push(warning.message);
  };
  process.on('warning', onWarning);
  return {
    async seen() {
      await new Promise((resolve) => setImmediate(resolve));
      return [...messages];
    },
    stop: () => process.off('warning', onWarning),
  };
}

/** `n` progress events to append, counting `done` on from `start`. */
export function progressEvents(n: number, start = 0): Array<{ type: 'progress'; data: { done: number } }> {
  return Array.from({ length: n }, (_, i) => ({ type: 'progress' as const, data: { done: start + i + 1 } }));
}

/** Assert-friendly check that seqs are exactly from+1..to, once each, in order. */
export function isExactRange(seqs: number[], from: number, to: number): boolean {
  if (seqs.length !== to - from) return false;
  for (let i = 0; i < seqs.length; i++) if (seqs[i] !== from + 1 + i) return false;
  return true;
}

/**
 * A clock that moves only when told: pass it as the SDK's `clock` (run
 * handles, watchers) and drive heartbeats, retries and reconnects with
 * `advance` instead of waiting for them. It starts at the wall clock's now,
 * so timestamps it gives are plausible to a real server.
 */
export class ManualClock {
  private at: number;
  private nextId = 1;
  private readonly timers = new Map<number, { due: number; fn: () => void }>();

  constructor(start = Date.now()) {
    this.at = start;
  }

  now = (): number => this.at;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.nextId++;
    this.timers.set(id, { due: this.at + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** How long until the next timer falls due, or null when none waits. */
  get nextDueInMs(): number | null {
    let due: number | null = null;
    for (const timer of this.timers.values()) if (due === null || timer.due < due) due = timer.due;
    return due === null ? null : due - this.at;
  }

  /** Move time on by `ms`, firing each timer that falls due, in order (and those they set, if due). */
  advance(ms: number): void {
    const until = this.at + ms;
    for (;;) {
      let next: [number, { due: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].due <= until && (!next || entry[1].due < next[1].due)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.at = next[1].due;
      next[1].fn();
    }
    this.at = until;
  }
}
