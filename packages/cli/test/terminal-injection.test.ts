import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { runtrail, spawnCli } from './harness.js';

/**
 * Text the server hands the CLI is someone else's: a cancel reason anyone
 * with a producer token sets, a run name from an archive, an error message
 * quoting what was asked. Carrying an escape sequence it could retitle the
 * user's window, clear the screen or write the clipboard; the CLI writes it
 * escaped (`\u001b`), never raw.
 */

const ESCAPES = '\u001b]0;pwned\u0007\u001b[2J';
const ESCAPED = '\\u001b]0;pwned\\u0007\\u001b[2J';
const ADMIN = 'terminal-injection-admin-0123456789';
// eslint-disable-next-line no-control-regex -- a raw ESC or BEL is what must not be written
const RAW = /[\u001b\u0007\u202e]/;

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;
const env = { RUNTRAIL_TOKEN: ADMIN };

beforeAll(async () => {
  dir = tempDir('runtrail-terminal-injection-');
  server = await startServer({ port: 0, dataDir: `${dir.path}/server`, logLevel: 'silent', adminToken: ADMIN });
  client = new RuntrailClient({ url: server.url, token: ADMIN });
});
afterAll(async () => {
  await server.close();
  dir.remove();
});

/** A `runtrail exec` of a long command, cancelled with `reason` by `runtrail cancel --wait`: what each printed. */
async function execCancelledWith(reason: string) {
    const exec = spawnCli(['exec', '--server', server.url, '--', 'sleep', '600'], { env });
    onTestFinished(() => {
      if (exec.exitCode === null) exec.kill('SIGKILL');
    });
    let execErr = '';
    exec.stderr!.on('data', (d: Buffer) => (execErr += d));
    const exited = once(exec, 'exit');
    const id = await waitUntil(() => /runtrail: run (\S+) on /.exec(execErr)?.[1], { what: 'exec to print its run id' });
    await waitUntil(async () => (await client.getRun(id)).snapshot.meta.exec, { what: 'exec to record its command' });
  const cancel = await runtrail(['cancel', id, '--wait', '--reason', reason, '--server', server.url], { env });
  await exited;
  return { cancel, execErr };
}

describe('server text reaches the terminal escaped', { timeout: 60_000 }, () => {
  it('a cancel reason with escape sequences: exec says how its run ended, and cancel --wait prints it, escaped', async () => {
    const { cancel, execErr } = await execCancelledWith(ESCAPES);

    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toContain(`cancel requested: ${ESCAPED}`);
    expect(cancel.stdout).not.toMatch(RAW);
    expect(execErr).toContain(`cancel requested: ${ESCAPED}`);
    expect(execErr).not.toMatch(RAW);
  });

  it('a cancel reason with a line break cannot print a line of its own: exec and cancel --wait keep it on one line', async () => {
    const { cancel, execErr } = await execCancelledWith('done\nrun 0000 ended succeeded');

    expect(cancel.code, cancel.stderr).toBe(0);
    // Before: two lines on stdout, the second reading as the CLI's own verdict.
    expect(cancel.stdout.split('\n').filter(Boolean)).toHaveLength(1);
    // The run's error is one line: the command's end says the reason with its line break as a space.
    expect(cancel.stdout).toContain('cancel requested: done run 0000 ended succeeded');
    expect(execErr).not.toMatch(/^run 0000 ended/m);
  });

  it("import says an archive's run name escaped, and tokens revoke the server's error quoting the id", async () => {
    const name = `report\u202etxt.exe`;
    const run = await client.createRun({ name });
    await run.succeed();
    const file = `${dir.path}/run.tar`;
    expect((await runtrail(['export', run.id, '-o', file, '--server', server.url], { env })).code).toBe(0);
    // Here already: the summary names the run all the same.
    const imported = await runtrail(['import', file, '--server', server.url], { env });
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toContain('report\\u202etxt.exe');
    expect(imported.stderr).not.toMatch(RAW);

    // The server refuses control characters in a path, not a bidirectional override, which reorders what follows it.
    const revoke = await runtrail(['tokens', 'revoke', 'tok\u202eexe.txt', '--server', server.url], { env });
    expect(revoke.code).toBe(2);
    expect(revoke.stderr).toContain('no token with id tok\\u202eexe.txt');
    expect(revoke.stderr).not.toMatch(RAW);
  });
});
