import { afterEach, describe, expect, it, vi } from 'vitest';
import { REDRAW_MS, STALL_NOTICE_MS, TransferProgress } from './transfer.js';

const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  if (tty) Object.defineProperty(process.stderr, 'isTTY', tty);
  else delete (process.stderr as { isTTY?: boolean }).isTTY;
});

/** The lines the progress writes (stderr no terminal: a line per redraw) while `chunks` pass through it, the clock moved past a redraw before each, then as it ends completed. */
async function linesOf(make: () => TransferProgress, chunks: number[]): Promise<string[]> {
  Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
  const progress = make();
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((text: string | Uint8Array) => {
    lines.push(String(text));
    return true;
  });
  let now = Date.now();
  async function* source() {
    for (const size of chunks) {
      now += REDRAW_MS;
      vi.setSystemTime(now);
      yield new Uint8Array(size);
    }
  }
  for await (const chunk of progress.through(source())) void chunk;
  progress.end(true);
  return lines;
}

describe('the progress line of a download', () => {
  it('with an estimated total (an export has no Content-Length) says "of about", stops at 99 % past the estimate, and ends at 100 %', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const lines = await linesOf(() => new TransferProgress('exporting run r', 1000, true, true), [500, 600, 100]);
    expect(lines).toEqual([
      'runtrail: exporting run r: 500 B of about 1000 B (50%)\n',
      'runtrail: exporting run r: 1.1 KiB of about 1000 B (99%)\n',
      'runtrail: exporting run r: 1.2 KiB of about 1000 B (99%)\n',
      'runtrail: exporting run r: 1.2 KiB (100%)\n',
    ]);
  });

  it('with an exact total (Content-Length) says it as it is', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const lines = await linesOf(() => new TransferProgress('downloading a', 1000, true), [500, 500]);
    expect(lines).toEqual(['runtrail: downloading a: 500 B of 1000 B (50%)\n', 'runtrail: downloading a: 1000 B of 1000 B (100%)\n', 'runtrail: downloading a: 1000 B of 1000 B (100%)\n']);
  });
});

describe('the progress line of a stalled transfer', () => {
  it('says how long nothing has gone through, once past STALL_NOTICE_MS (and, sent whole, that it waits for the answer), instead of a line that looks hung', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((text: string | Uint8Array) => {
      lines.push(String(text));
      return true;
    });
    const progress = new TransferProgress('importing stdin', null, true);
    let more!: () => void;
    const stalled = new Promise<void>((resolve) => (more = resolve));
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    async function* source() {
      yield new Uint8Array(500);
      await stalled;
      yield new Uint8Array(500);
    }
    const transfer = (async () => {
      for await (const chunk of progress.through(source())) void chunk;
      await answered;
    })();
    const done = progress.until(transfer, 'lost');
    await vi.advanceTimersByTimeAsync(STALL_NOTICE_MS - 1_000);
    // Before: nothing at all, however long the stall.
    expect(lines).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(lines).toEqual([`runtrail: importing stdin: 500 B (nothing for ${STALL_NOTICE_MS / 1000} s)\n`]);
    // Not a line a second where stderr is no terminal.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(lines).toHaveLength(1);
    more();
    await vi.advanceTimersByTimeAsync(STALL_NOTICE_MS);
    expect(lines.at(-1)).toBe(`runtrail: importing stdin: 1000 B (all sent; waiting ${STALL_NOTICE_MS / 1000} s for the server's answer)\n`);
    answer();
    await done;
    expect(lines.at(-1)).toBe('runtrail: importing stdin: 1000 B\n');
  });
});
