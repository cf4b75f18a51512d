import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '@runtrail/test-support';
import { startServer } from './start.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanups.splice(0)) fn();
});

describe('shutdown', () => {
  it('ends its log with one line saying it stopped and how long stopping took', async () => {
    const dir = tempDir('runtrail-shutdown-');
    cleanups.push(() => dir.remove());
    const lines: Array<Record<string, unknown>> = [];
    const server = await startServer({
      port: 0,
      dataDir: dir.path,
      logLevel: 'info',
      logFormat: 'json',
      stopOnSignals: false,
      logDestination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
          done();
        },
      }),
    });
    await server.close();
    expect(lines.at(-1)).toMatchObject({ level: 30, ms: expect.any(Number), msg: expect.stringMatching(/^stopped in \d+\.\d s: handlers ended, streams closed, store closed$/) });
  });
});
