import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { FolderCollector } from './collect.js';

/** FolderCollector on a real folder: what a command writes is stored as it settles, and the rest at the end. */

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir('runtrail-collect-');
});
afterEach(() => dir.remove());

/** A store that records each call with the content the file had then. */
function recordingStore(refuse: (name: string) => string | null = () => null) {
  const calls: Array<[name: string, content: string, replace: boolean]> = [];
  const store = async (name: string, path: string, replace: boolean) => {
    const problem = refuse(name);
    if (problem) throw new Error(problem);
    calls.push([name, readFileSync(path, 'utf8'), replace]);
  };
  return { calls, store };
}

describe('FolderCollector', () => {
  it('stores a file while the command runs once it stayed the same between two looks, and its later version at the end as a replacement', async () => {
    writeFileSync(join(dir.path, 'before.txt'), 'there before the command');
    const { calls, store } = recordingStore();
    const collector = await FolderCollector.start(dir.path, store, { intervalMs: 30 });
    writeFileSync(join(dir.path, 'model.ckpt'), 'epoch 1');
    await waitUntil(() => calls.length === 1, { what: 'the checkpoint to be stored while the command runs' });
    expect(calls).toEqual([['model.ckpt', 'epoch 1', false]]);
    writeFileSync(join(dir.path, 'model.ckpt'), 'epoch 2, longer');
    const result = await collector.finish();
    expect(calls).toEqual([
      ['model.ckpt', 'epoch 1', false],
      ['model.ckpt', 'epoch 2, longer', true],
    ]);
    expect(result).toEqual({ stored: ['model.ckpt'], skipped: [] });
  });

  it('does not take a file that changes at every look until the end', async () => {
    const { calls, store } = recordingStore();
    const collector = await FolderCollector.start(dir.path, store, { intervalMs: 100 });
    const growing = join(dir.path, 'growing.log');
    writeFileSync(growing, 'line\n');
    // Synchronous appends on a 5 ms timer: between two looks 100 ms apart at least one always lands.
    const writer = setInterval(() => appendFileSync(growing, 'line\n'), 5);
    try {
      // Two files written one after the other, each stored after two looks: four looks or more
      // saw the log growing, and it must not be among what was stored.
      for (const name of ['first.txt', 'second.txt']) {
        writeFileSync(join(dir.path, name), 'written once');
        await waitUntil(() => calls.some(([stored]) => stored === name), { what: `${name} to be stored` });
      }
      expect(calls.map(([name]) => name)).toEqual(['first.txt', 'second.txt']);
    } finally {
      clearInterval(writer);
    }
    const result = await collector.finish();
    expect(result.stored).toEqual(['first.txt', 'second.txt', 'growing.log']);
    expect(calls.at(-1)).toEqual(['growing.log', readFileSync(growing, 'utf8'), false]);
  });

  it('reports a file the run refuses, and its bad names, and stores the others', async () => {
    const { calls, store } = recordingStore((name) => (name === 'huge.bin' ? 'the upload is too large' : null));
    // A folder the command makes: none before it starts.
    const out = join(dir.path, 'out');
    const collector = await FolderCollector.start(out, store, { intervalMs: 0 });
    mkdirSync(out);
    writeFileSync(join(out, 'huge.bin'), 'x');
    writeFileSync(join(out, 'ok.txt'), 'fine');
    writeFileSync(join(out, 'bad\u0001name'), 'y');
    const result = await collector.finish();
    expect(calls).toEqual([['ok.txt', 'fine', false]]);
    expect(result.stored).toEqual(['ok.txt']);
    expect(result.skipped).toEqual(
      expect.arrayContaining([
        { name: 'huge.bin', reason: 'the upload is too large' },
        { name: 'bad\u0001name', reason: expect.stringContaining('control character') },
      ]),
    );
  });
});
