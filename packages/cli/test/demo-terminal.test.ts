import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { BIN } from './harness.js';

/**
 * `runtrail demo` (what `npm start` runs) in a real terminal (tmux): the
 * server's log lines and the run's progress line share the screen, and
 * neither may end up in the middle of the other.
 */
describe('runtrail demo in a terminal', () => {
  const dir = tempDir('runtrail-demo-tty-');
  // A tmux server of this test's own; its socket goes with the temp dir.
  const socket = join(dir.path, 'tmux.sock');
  const tmux = (...args: string[]) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
  const screen = () => tmux('capture-pane', '-p', '-J', '-t', 'demo', '-S', '-200');

  afterAll(() => {
    try {
      tmux('kill-server');
    } catch (err) {
      // Already gone (the session ended and the server with it): nothing to stop.
      void err;
    }
    dir.remove();
  });

  it('prints the server’s log lines above the progress line, never on it, and leaves the last progress line whole', async () => {
    tmux('new-session', '-d', '-s', 'demo', '-x', '200', '-y', '50', 'bash --norc --noprofile');
    const command = [process.execPath, BIN, 'demo', '--port', '0', '--docs', '10', '--data-dir', join(dir.path, 'data')].map((arg) => `'${arg}'`).join(' ');
    tmux('send-keys', '-t', 'demo', command, 'Enter');
    await waitUntil(() => screen().includes('Ctrl-C to stop'), { what: 'the demo run to end', timeoutMs: 60_000 });

    const lines = screen().split('\n');
    // The server logs the run's end while the progress line is on screen: its line starts a line of its own.
    expect(lines.some((line) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(demo-pipeline\): run ended succeeded$/.test(line))).toBe(true);
    const progress = lines.filter((line) => line.includes('] ') && /\d+% /.test(line));
    expect(progress.length).toBeGreaterThan(0);
    // The count and the pipeline's words, then its calls once it makes any.
    for (const line of progress) expect(line).toMatch(/^\[[#.]{24}\]\s+\d+% \S+( \S+)?(\s+\d+(\/\d+)?( .*?)?)?(\s+ok \d+\s+failed \d+\s+retries \d+\s+in flight \d+)?(\s+\((live|connecting|reconnecting)\))?$/);
    // Once the run has ended, nothing of the stream: "(live)" or "(ended)" beside it read as if it went on.
    expect(progress.at(-1)).toMatch(/100% succeeded .*in flight 0$/);

    tmux('send-keys', '-t', 'demo', 'C-c');
    await waitUntil(() => /INFO: shutting down/.test(screen()), { what: 'the demo to shut down', timeoutMs: 30_000 });
  });
});
