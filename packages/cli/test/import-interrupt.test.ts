import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { BIN, serve, type ServeProcess } from './harness.js';

/**
 * Ctrl-C during `runtrail import`: it says how far the upload got and what
 * that left, with exit 130, instead of a bare ^C after which the user could
 * not tell whether the run was imported.
 */
let dir: ReturnType<typeof tempDir>;
let source: ServeProcess;
let target: ServeProcess;

beforeAll(async () => {
  dir = tempDir();
  [source, target] = await Promise.all([
    serve(['--port', '0', '--data-dir', join(dir.path, 'source'), '--log-level', 'warn']),
    serve(['--port', '0', '--data-dir', join(dir.path, 'target'), '--log-level', 'warn']),
  ]);
});

afterAll(async () => {
  expect(await source.stop()).toBe(0);
  expect(await target.stop()).toBe(0);
  dir.remove();
});

describe('Ctrl-C during import', () => {
  it('part way through the upload: says it was interrupted and nothing was imported, exit 130', async () => {
    const client = new RuntrailClient({ url: source.url });
    const run = await client.createRun({ name: 'to-copy' });
    // Large enough that feeding its first half takes seconds: the line is drawn when a chunk comes a redraw
    // interval after the last, and a loaded machine could otherwise take the whole half in one read.
    await run.succeed({ note: 'x'.repeat(400_000) });
    const archive = new Uint8Array(await (await client.exportRun(run.id)).arrayBuffer());

    const child = spawn(process.execPath, [BIN, 'import', '-', '--server', target.url, '--progress'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    // The first half, a little at a time and never the rest, until the progress line shows the upload under way.
    let sent = 0;
    const feed = setInterval(() => {
      if (sent < archive.length / 2) child.stdin.write(archive.subarray(sent, (sent += 1024)));
    }, 20);
    try {
      await waitUntil(() => stderr.includes('runtrail: importing stdin: '), { timeoutMs: 20_000, what: 'the progress line' });
    } finally {
      clearInterval(feed);
    }
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect({ code, stdout }).toEqual({ code: 130, stdout: '' });
    expect(stderr).toMatch(/\nruntrail: interrupted after \d+(\.\d)? (B|KiB): nothing was imported\n$/);
    await expect(new RuntrailClient({ url: target.url }).getRun(run.id)).rejects.toMatchObject({ code: 'run_not_found' });
  });
});
