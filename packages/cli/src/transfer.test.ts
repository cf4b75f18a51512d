import { afterEach, describe, expect, it, vi } from 'vitest';
import { REDRAW_MS, TransferProgress } from './transfer.js';

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
