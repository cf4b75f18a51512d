import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir } from '@runtrail/test-support';
import { BIN, runtrail } from './harness.js';

/**
 * What a new user types wrong with `runtrail exec` and `runtrail start`,
 * and what they are told: the built binary against a real server.
 */

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeAll(async () => {
  dir = tempDir('runtrail-exec-slips-');
  server = await startServer({ port: 0, dataDir: `${dir.path}/server`, logLevel: 'silent' });
  server.define('noop', async () => null);
  // A command's failure as ctx.exec words it: a headline, a blank line, then the last stderr lines.
  server.define('fails-with-stderr', async () => {
    throw new Error('python3 train.py exited with code 1: ValueError: bad row 7\n\nlast 2 lines of stderr:\n    raise ValueError("bad row 7")\nValueError: bad row 7');
  });
  client = new RuntrailClient({ url: server.url });
});
afterAll(async () => {
  await server.close();
  dir.remove();
});

const runIdOf = (stderr: string) => /runtrail: run (\S+) on /.exec(stderr)?.[1];

describe('runtrail exec: a command that cannot be started says what is missing, as ctx.exec does', () => {
  it('a bare name on no folder of PATH is named as such, not as "spawn … ENOENT"', async () => {
    const result = await runtrail(['exec', '--server', server.url, '--', 'no-such-program-xyz'], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(127);
    expect(result.stderr).toContain('could not start no-such-program-xyz: no program named no-such-program-xyz in any folder of its PATH');
    expect(result.stderr).not.toContain('spawn');
    const run = await client.getRun(runIdOf(result.stderr)!);
    expect(run.error?.message).toContain('no program named no-such-program-xyz in any folder of its PATH');
  });

  it('a relative program that is not there names the path looked for', async () => {
    const result = await runtrail(['exec', '--server', server.url, '--', './train.sh'], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(127);
    expect(result.stderr).toContain(`could not start ./train.sh: there is no ${join(dir.path, 'train.sh')}`);
  });

  it('a script whose #! interpreter is missing is told so, not that the script is missing', async () => {
    const script = join(dir.path, 'bad-interp.sh');
    writeFileSync(script, '#!/usr/bin/no-such-interpreter\necho hi\n');
    chmodSync(script, 0o755);
    const result = await runtrail(['exec', '--server', server.url, '--', './bad-interp.sh'], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(127);
    expect(result.stderr).toContain(`${script} exists, but the interpreter its first line (#!) names does not`);
  });

  it('a script without its execute bit, or a folder, exits 126 as a shell does, saying why it may not run, not "spawn … EACCES"', async () => {
    writeFileSync(join(dir.path, 'no-x.sh'), 'echo hi\n');
    chmodSync(join(dir.path, 'no-x.sh'), 0o644);
    const script = await runtrail(['exec', '--server', server.url, '--', './no-x.sh'], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(script.code, script.stderr).toBe(126);
    expect(script.stderr).toContain(`could not start ./no-x.sh: ${join(dir.path, 'no-x.sh')} may not be run: it is not executable (chmod +x it, or name its interpreter first: sh ./no-x.sh, python3 ./no-x.sh)`);
    expect(script.stderr).not.toContain('spawn');
    const folder = await runtrail(['exec', '--server', server.url, '--', dir.path], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(folder.code, folder.stderr).toBe(126);
    expect(folder.stderr).toContain(`could not start ${dir.path}: ${dir.path} is a folder, not a program`);
    expect((await client.getRun(runIdOf(folder.stderr)!)).error?.message).toContain('is a folder, not a program');
  });
});

describe('runtrail exec --log-file', () => {
  it('a path it cannot write is refused before any run is made, naming the flag and why, not dropped without a word', async () => {
    const before = (await client.listRuns({ limit: 200 })).runs.length;
    const path = join(dir.path, 'no', 'such', 'folder', 'out.log');
    const result = await runtrail(['exec', '--server', server.url, '--log-file', path, '--', 'true'], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`^runtrail: invalid_request: --log-file ${path}: cannot write there \\(ENOENT`));
    expect((await client.listRuns({ limit: 200 })).runs.length).toBe(before);
  });

  it('a path it can write, in a folder not made yet, still gets the whole output', async () => {
    const path = join(dir.path, 'logs-new', 'out.log');
    const result = await runtrail(['exec', '--server', server.url, '--log-file', path, '--', 'sh', '-c', 'echo one; echo two >&2'], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe('one\n[stderr] two\n');
  });
});

describe('runtrail start --give-up-after', () => {
  it('without --follow is refused before a run is started, as cancel refuses it without --wait (it is not a timeout)', async () => {
    const before = (await client.listRuns({ limit: 200 })).runs.length;
    const result = await runtrail(['start', 'noop', '--server', server.url, '--give-up-after', '10m'], { env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('runtrail: invalid_request: --give-up-after is how long --follow waits for a silent server; give it with --follow (--timeout limits the run)\n');
    expect((await client.listRuns({ limit: 200 })).runs.length).toBe(before);
  });
});

describe('runtrail exec --collect-every', () => {
  it('without --collect is refused before any run is made: there is no folder for it to look at', async () => {
    const before = (await client.listRuns({ limit: 200 })).runs.length;
    const result = await runtrail(['exec', '--server', server.url, '--collect-every', '1s', '--', 'true'], { cwd: dir.path, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toBe('runtrail: invalid_request: --collect-every is how often --collect looks at its folder; give it with --collect DIR\n');
    expect((await client.listRuns({ limit: 200 })).runs.length).toBe(before);
  });
});

describe('runtrail exec: the command reads what is piped into exec', () => {
  it('`printf … | runtrail exec -- wc -l` counts the lines piped in, as the command alone would, not none', async () => {
    const child = spawn(process.execPath, [BIN, 'exec', '--server', server.url, '--', 'wc', '-l'], {
      cwd: dir.path,
      env: { ...process.env, RUNTRAIL_URL: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.stdin.end('one\ntwo\nthree\n');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, stderr).toBe(0);
    expect(stdout.trim()).toBe('3');
  });
});

describe('runtrail exec: the command\'s output on stdout', () => {
  it('is copied byte for byte when it is not UTF-8 (`runtrail exec -- cat data.bin > copy.bin`), never decoded to U+FFFD', async () => {
    const binary = Buffer.concat([randomBytes(100_000), Buffer.from([0xff, 0x0a, 0xc3])]);
    writeFileSync(join(dir.path, 'data.bin'), binary);
    const child = spawn(process.execPath, [BIN, 'exec', '--server', server.url, '--', 'cat', 'data.bin'], {
      cwd: dir.path,
      env: { ...process.env, RUNTRAIL_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => stdout.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, stderr).toBe(0);
    expect(Buffer.concat(stdout).equals(binary)).toBe(true);
  });
});

describe('runtrail start --follow / tail: how a run ended', () => {
  it("a failure's stderr lines follow its headline as lines of their own (on stderr), not as one line full of \\n", async () => {
    const result = await runtrail(['start', 'fails-with-stderr', '--server', server.url, '--follow'], { env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toMatch(/\nrun \S+ ended failed \(error: python3 train\.py exited with code 1: ValueError: bad row 7\)\n$/);
    expect(result.stderr).toContain('\n  last 2 lines of stderr:\n      raise ValueError("bad row 7")\n  ValueError: bad row 7\n');
  });
});
