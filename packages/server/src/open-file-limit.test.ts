import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { openFileLimit, openFileLimitProblem } from './open-file-limit.js';

const BIN = fileURLToPath(new URL('../../cli/bin/runtrail.js', import.meta.url));

it('reads the soft limit of open files from /proc, and is silent where there is none', () => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n';
  expect(openFileLimit(() => limits)).toBe(1024);
  expect(openFileLimit(() => limits.replace('1024 ', 'unlimited'))).toBeNull();
  expect(
    openFileLimit(() => {
      throw Object.assign(new Error('no /proc'), { code: 'ENOENT' });
    }),
  ).toBeNull();
  expect(openFileLimitProblem(4096, 20_000)).toBeNull();
  expect(openFileLimitProblem(4096, null)).toBeNull();
  expect(openFileLimitProblem(4096, 4096)).toMatch(/^this process may open at most 4096 files \(ulimit -n\), but maxHttpConnectionsPerIp lets one client address hold 4096 connections/);
});

it('a server started under ulimit -n 1024 (a common default) warns that one client could take every descriptor, naming both limits', async () => {
  const dir = tempDir();
  // The limit a container or service manager often has; maxHttpConnectionsPerIp defaults to 4096.
  // Hard and soft: Node raises its soft limit to the hard one as it starts.
  const child = spawn('bash', ['-c', `ulimit -n 1024 && exec "$0" "$1" serve --port 0 --data-dir "$2"`, process.execPath, BIN, dir.path], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  try {
    await waitUntil(() => /serving on http/.test(out), { what: 'the server to start', timeoutMs: 20_000 });
    const warning = out.split('\n').find((line) => line.includes('ulimit -n'));
    expect(warning, out).toBeDefined();
    expect(warning).toContain('this process may open at most 1024 files (ulimit -n), but maxHttpConnectionsPerIp lets one client address hold 4096 connections');
    expect(warning).toContain('raise the limit above 4160');
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    dir.remove();
  }
});
