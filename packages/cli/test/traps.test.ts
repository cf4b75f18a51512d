import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema, schemaExists } from '@runtrail/test-support/postgres';
import { freePort, runtrail } from './harness.js';

/**
 * The small traps of issue 10 item 7: each mistake a user makes gets one
 * line saying what is wrong and what to do, and exit code 2, like every
 * other error of the CLI.
 */

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0);

describe('runtrail traps', () => {
  it('serve on a port in use says so in one line and exits 2, having made no data file', async () => {
    const busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const { port } = busy.address() as { port: number };
    const dir = tempDir();
    try {
      const result = await runtrail(['serve', '--port', String(port), '--data-dir', dir.path, '--log-level', 'silent']);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toEqual([
        `runtrail: unavailable: port ${port} on 127.0.0.1 is in use (another runtrail serve?): pass --port 0 for a free port, or another --port`,
      ]);
      // The port is checked before the store is opened: a mistyped --port leaves nothing behind.
      expect(existsSync(join(dir.path, 'runtrail.db'))).toBe(false);
    } finally {
      busy.close();
      dir.remove();
    }
  });

  it('serve on PostgreSQL on a port in use creates no schema before failing', async () => {
    const busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const { port } = busy.address() as { port: number };
    const dir = tempDir();
    const schema = await freshSchema();
    try {
      const result = await runtrail([
        'serve',
        '--port',
        String(port),
        '--data-dir',
        dir.path,
        '--database',
        TEST_DATABASE_URL,
        '--database-schema',
        schema,
        '--log-level',
        'silent',
      ]);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toEqual([
        `runtrail: unavailable: port ${port} on 127.0.0.1 is in use (another runtrail serve?): pass --port 0 for a free port, or another --port`,
      ]);
      expect(await schemaExists(schema)).toBe(false);
    } finally {
      busy.close();
      dir.remove();
      await dropSchema(schema);
    }
  });

  it('--server without a scheme is an invalid URL, not "no server answers there"', async () => {
    const result = await runtrail(['runs', 'ls', '--server', '127.0.0.1:4310']);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      'runtrail: invalid_request: invalid URL "127.0.0.1:4310" (--server): give the whole URL with its scheme, e.g. http://127.0.0.1:4310',
    ]);
    const fromEnv = await runtrail(['runs', 'ls'], { env: { RUNTRAIL_URL: 'localhost:4310' } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain('invalid URL "localhost:4310" (RUNTRAIL_URL)');
  });

  it('tail with no server answering gives up after --give-up-after with one line, exit 2', async () => {
    const port = await freePort();
    const result = await runtrail(['tail', 'some-run', '--server', `http://127.0.0.1:${port}`, '--give-up-after', '300']);
    expect(result.code).toBe(2);
    // Giving up is not the run's end: no status line "ended" (closing the watcher drew one).
    expect(result.stdout).not.toContain('ended');
    // While it waits, its line names the server it waits for (before: "(reconnecting)" until it gave up).
    expect(result.stdout).toMatch(new RegExp(`\\((re)?connecting to http://127\\.0\\.0\\.1:${port}`));
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(new RegExp(`^runtrail: unavailable: no answer from http://127\\.0\\.0\\.1:${port} for 300ms \\(.+\\); gave up \\(--give-up-after\\)$`)),
    ]);
  });

  it('tail --events (no status line) says on stderr which server it is reconnecting to, once, before giving up', async () => {
    const port = await freePort();
    const result = await runtrail(['tail', 'some-run', '--events', '--server', `http://127.0.0.1:${port}`, '--give-up-after', '1500']);
    expect(result.code).toBe(2);
    const said = lines(result.stderr);
    expect(said).toHaveLength(2);
    expect(said[0]).toMatch(new RegExp(`^runtrail: reconnecting to http://127\\.0\\.0\\.1:${port}`));
    expect(said[1]).toMatch(/gave up \(--give-up-after\)$/);
  });

  it('serve with a data dir that cannot be made (under /proc, where Node spins for ever) says so in one line and exits 2', async () => {
    const result = await runtrail(['serve', '--port', '0', '--data-dir', '/proc/runtrail-nope/data', '--log-level', 'silent']);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      'runtrail: unavailable: cannot use the data dir /proc/runtrail-nope/data: cannot create the directory /proc/runtrail-nope: ' +
        'its parent /proc exists but cannot hold it (ENOENT); pass another --data-dir (or RUNTRAIL_DATA_DIR)',
    ]);
  });

  it('serve with a PostgreSQL database that does not exist names it and says how to make it, in one line, exit 2', async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = '/runtrail_cli_missing';
    const result = await runtrail(['serve', '--port', '0', '--database', url.toString(), '--log-level', 'silent']);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(/^runtrail: unavailable: cannot use the PostgreSQL database "runtrail_cli_missing" at .+: there is no database "runtrail_cli_missing" \(3D000\); create it \(createdb .+\) or name one that exists$/),
    ]);
  });

  it('a usage error is one line with its code, naming what is wrong and the nearest command or option (exit 2); --help prints help (exit 0)', async () => {
    const cases: Array<[string[], string]> = [
      [['serv'], "runtrail: invalid_request: unknown command 'serv' (did you mean serve?); `runtrail --help` shows the usage"],
      [['serve', '--prot', '1'], "runtrail: invalid_request: unknown option '--prot' (did you mean --port?); `runtrail serve --help` shows the usage"],
      [['runs', 'ls', '--no-such-flag'], "runtrail: invalid_request: unknown option '--no-such-flag'; `runtrail runs ls --help` shows the usage"],
      [['tail'], "runtrail: invalid_request: missing required argument 'id'; `runtrail tail --help` shows the usage"],
      [['no-such-command'], "runtrail: invalid_request: unknown command 'no-such-command'; `runtrail --help` shows the usage"],
      // The command's own option without -- before the command: said how to pass it.
      [['exec', 'python3', '-c', 'print(1)'], "runtrail: invalid_request: unknown option '-c' (an option of the command goes after --: runtrail exec [options] -- CMD ARGS...); `runtrail exec --help` shows the usage"],
      [['exec', '--idle-timout', '1m', '--', 'true'], "runtrail: invalid_request: unknown option '--idle-timout' (did you mean --idle-timeout?); `runtrail exec --help` shows the usage"],
    ];
    for (const [args, message] of cases) {
      const result = await runtrail(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toBe(`${message}\n`);
    }
    for (const args of [['--help'], ['serve', '--help'], ['runs', 'ls', '--help']]) {
      const help = await runtrail(args);
      expect(help.code, args.join(' ')).toBe(0);
      expect(help.stdout, args.join(' ')).toMatch(/^Usage: runtrail /);
    }
    // A new user sees what to type first, not only the list of commands.
    const top = await runtrail(['--help']);
    expect(top.stdout).toContain('\nExamples:\n  runtrail serve ');
    expect(top.stdout).toContain('runtrail exec -- python3 train.py');
    expect(top.stdout).toContain('RUNTRAIL_TOKEN');
  });

  it('a flag value out of its range or set is refused before any request, saying what it takes', async () => {
    const cases: Array<[string[], string]> = [
      [['runs', 'ls', '--limit', 'abc'], "runtrail: invalid_request: option '--limit <n>' argument 'abc' is invalid. give a whole number from 1 to 200; `runtrail runs ls --help` shows the usage"],
      [['runs', 'ls', '--limit', '500'], "runtrail: invalid_request: option '--limit <n>' argument '500' is invalid. give a whole number from 1 to 200; `runtrail runs ls --help` shows the usage"],
      // Written in decimal digits, as the API takes a query's numbers: not 1e1 or 0x10, which Number() reads.
      [['runs', 'ls', '--limit', '1e1'], "runtrail: invalid_request: option '--limit <n>' argument '1e1' is invalid. give a whole number from 1 to 200; `runtrail runs ls --help` shows the usage"],
      [['runs', 'ls', '--limit', '0x10'], "runtrail: invalid_request: option '--limit <n>' argument '0x10' is invalid. give a whole number from 1 to 200; `runtrail runs ls --help` shows the usage"],
      [['runs', 'ls', '--status', 'done'], "runtrail: invalid_request: option '--status <status>' argument 'done' is invalid. Allowed choices are queued, running, succeeded, failed, cancelled; `runtrail runs ls --help` shows the usage"],
      [['tail', 'some-run', '--give-up-after', 'soon'], "runtrail: invalid_request: option '--give-up-after <duration>' argument 'soon' is invalid. give milliseconds (1500) or a number with a unit (500ms, 30s, 10m, 2h, 30d), more than 0; `runtrail tail --help` shows the usage"],
      // '0s' has the form asked for: the message must say what is wrong with it. And `30d`, the README's prune example, is listed.
      [['prune', '--older-than', '0s', '--dry-run'], "runtrail: invalid_request: option '--older-than <duration>' argument '0s' is invalid. give milliseconds (1500) or a number with a unit (500ms, 30s, 10m, 2h, 30d), more than 0; `runtrail prune --help` shows the usage"],
    ];
    // Nothing listens there: a request would fail differently.
    const server = `http://127.0.0.1:${await freePort()}`;
    for (const [args, message] of cases) {
      const result = await runtrail([...args, '--server', server]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(lines(result.stderr), args.join(' ')).toEqual([message]);
    }
  });
});
