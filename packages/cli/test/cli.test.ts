import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { createProgram } from '../src/program.js';
import { runtrail as run, serve, spawnCli, type ServeProcess } from './harness.js';

const runtrail = (args: string[], env: Record<string, string> = {}, cwd?: string) => run(args, { env, cwd });

/** What `runtrail ...path --help` prints (less the text after it), read from the program in this process. */
function helpOf(path: string[]): string {
  let command = createProgram();
  for (const name of path) {
    const sub = command.commands.find((c) => c.name() === name || c.aliases().includes(name));
    if (!sub) throw new Error(`no command ${path.join(' ')}`);
    command = sub;
  }
  return command.helpInformation();
}

/**
 * The `runtrail` binary as a user runs it: built JS in real processes
 * against a server that is itself a `runtrail serve` process.
 */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;
let url: string;

beforeAll(async () => {
  dir = tempDir();
  server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'warn']);
  url = server.url;
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

describe('runtrail CLI', () => {
  it("shows a run's text with its control characters written out, so run data cannot drive the terminal", async () => {
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'escapes', labels: { team: 'x' } });
    // A window title (OSC 0), a clipboard write (OSC 52), a bidi override, a bell.
    run.progress(1, 2, 'step \x1b]0;PWNED\x07 \x1b]52;c;ZWNobyBoaQ==\x07 \u202eevil\u202c');
    await run.fail(new Error('bad \x1b[2J\x1b[Hwiped'));
    const show = await runtrail(['runs', 'show', run.id, '--server', url]);
    expect(show.code).toBe(0);
    // eslint-disable-next-line no-control-regex -- control characters are what must not be printed
    const controls = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/;
    expect(show.stdout).not.toMatch(controls);
    expect(show.stdout).toContain('step \\u001b]0;PWNED\\u0007 \\u001b]52;c;ZWNobyBoaQ==\\u0007 \\u202eevil\\u202c');
    expect(show.stdout).toContain('bad \\u001b[2J\\u001b[Hwiped');
    const ls = await runtrail(['runs', 'ls', '--name', 'escapes', '--server', url]);
    expect([ls.code, ls.stdout]).toEqual([0, expect.stringContaining('escapes')]);
    expect(ls.stdout).not.toMatch(controls);
    // --json keeps the text exactly (JSON escapes it): a script gets what was stored.
    const json = await runtrail(['runs', 'show', run.id, '--json', '--server', url]);
    expect((JSON.parse(json.stdout) as { snapshot: { progress: { message: string } } }).snapshot.progress.message).toBe(
      'step \x1b]0;PWNED\x07 \x1b]52;c;ZWNobyBoaQ==\x07 \u202eevil\u202c',
    );
  });

  it('lists runs newest first and shows one with its counters, progress and phases', async () => {
    const client = new RuntrailClient({ url });
    const older = await client.createRun({ name: 'older-run' });
    await older.succeed();
    const run = await client.createRun({ name: 'eval-gpt4', labels: { team: 'search' } });
    await run.withPhase('evaluate', async () => {
      await run.call('Evaluating doc_1 with gpt-4', async () => 1);
      run.progress(1, 4, 'evaluating');
    });
    await run.flush();

    const ls = await runtrail(['runs', 'ls', '--server', url]);
    expect(ls.code).toBe(0);
    const lines = ls.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+STATUS/);
    expect(lines[1]).toContain('eval-gpt4');
    expect(lines[1]).toContain('1/4 25%');
    expect(lines[2]).toContain('older-run');
    // Calls counted where there were calls; a run that made none shows none (as the dashboard does).
    expect(lines[1]).toMatch(/\s1\/0\/0\s/);
    expect(lines[2]).not.toMatch(/\d+\/\d+\/\d+/);

    // `list` is what many type first: the same listing (id, name, status; durations move on).
    const list = await runtrail(['runs', 'list', '--server', url]);
    const columns = (text: string) => text.trim().split('\n').map((line) => line.split(/\s+/).slice(0, 3).join(' '));
    expect(list.code).toBe(0);
    expect(columns(list.stdout)).toEqual(columns(ls.stdout));

    const filtered = await runtrail(['runs', 'ls', '--label', 'team=search', '--json'], { RUNTRAIL_URL: url });
    expect(JSON.parse(filtered.stdout).runs.map((r: { id: string }) => r.id)).toEqual([run.id]);

    const show = await runtrail(['runs', 'show', run.id, '--server', url]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('status     running');
    expect(show.stdout).toMatch(/calls\s+ok 1\s+failed 0\s+retries 0/);
    expect(show.stdout).toMatch(/phase\s+evaluate completed/);
    await run.succeed();
  });

  it('--label given twice to runs ls and prune matches runs with both labels, as start and exec take it twice', async () => {
    // Before: the second --label replaced the first, so `prune --label team=a --label env=x` matched (and deleted) team b's runs too.
    const client = new RuntrailClient({ url });
    const both = await client.createRun({ name: 'labelled', labels: { team: 'a', env: 'labels-test' } });
    const other = await client.createRun({ name: 'labelled', labels: { team: 'b', env: 'labels-test' } });
    await both.succeed();
    await other.succeed();
    const listed = await runtrail(['runs', 'ls', '--label', 'team=a', '--label', 'env=labels-test', '--json', '--server', url]);
    expect(JSON.parse(listed.stdout).runs.map((r: { id: string }) => r.id)).toEqual([both.id]);
    const pruned = await runtrail(['prune', '--older-than', '1ms', '--label', 'team=a', '--label', 'env=labels-test', '--dry-run', '--json', '--server', url]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(JSON.parse(pruned.stdout).runs.map((r: { id: string }) => r.id)).toEqual([both.id]);
    // The comma form still works, and help shows no "(default: [])" for a repeatable flag.
    const comma = await runtrail(['runs', 'ls', '--label', 'team=a,env=labels-test', '--json', '--server', url]);
    expect(JSON.parse(comma.stdout).runs.map((r: { id: string }) => r.id)).toEqual([both.id]);
    expect((await runtrail(['runs', 'ls', '--help'])).stdout).not.toContain('(default: [])');
  });

  it('shows the calls a run left in flight when it ended as unfinished', async () => {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${url}/api/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as { id: string };
    };
    const { id } = await post('/runs', { name: 'left-open' });
    await post(`/runs/${id}/events`, {
      events: [
        { type: 'call.started', data: { callId: 'a', label: 'answered' } },
        { type: 'call.succeeded', data: { callId: 'a' } },
        { type: 'call.started', data: { callId: 'b', label: 'never answered' } },
      ],
    });
    await post(`/runs/${id}/finish`, { status: 'failed', error: { kind: 'orphaned', message: 'gone' } });
    const show = await runtrail(['runs', 'show', id, '--server', url]);
    expect(show.stdout).toMatch(/calls\s+ok 1\s+failed 0\s+retries 0\s+in flight 0\s+unfinished 1\n/);

    // More open than the snapshot lists (1,000): the count is every one of them.
    const { id: busy } = await post('/runs', { name: 'busy' });
    await post(`/runs/${busy}/events`, { events: Array.from({ length: 1_200 }, (_, i) => ({ type: 'call.started', data: { callId: `c${i}`, label: `call ${i}` } })) });
    const busyShow = await runtrail(['runs', 'show', busy, '--server', url]);
    expect(busyShow.stdout).toMatch(/calls\s+ok 0\s+failed 0\s+retries 0\s+in flight 1200\n/);
  });

  it('lists failure kind, parent and labels, and shows input, output and the whole error', async () => {
    const client = new RuntrailClient({ url });
    const parent = await client.createRun({ name: 'sweep-19', input: { trials: 2 }, labels: { project: 'tune' } });
    const child = await client.createRun({ name: 'trial-19', parentId: parent.id, labels: { lr: '0.1', seed: '3' } });
    const traceback = 'Traceback (most recent call last):\n  File "train.py", line 3, in <module>\n    main()\nValueError: lr too high';
    await child.fail(traceback, 'error');
    await parent.succeed({ best: { lr: 0.01, score: 0.93 } });

    const ls = await runtrail(['runs', 'ls', '--search', '-19', '--server', url]);
    expect(ls.code).toBe(0);
    const [header, childRow, parentRow] = ls.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+STATUS\s+FAILED\s+.*PARENT\s+LABELS$/);
    expect(childRow).toMatch(new RegExp(`^${child.id}\\s+trial-19\\s+failed\\s+error\\s+.*${parent.id}\\s+lr=0.1,seed=3$`));
    expect(parentRow).toMatch(new RegExp(`^${parent.id}\\s+sweep-19\\s+succeeded\\s+-\\s+.*\\s-\\s+project=tune$`));
    // A capped list says how many it leaves out, on stderr: stdout holds the table's lines only, for scripts.
    const capped = await runtrail(['runs', 'ls', '--search', '-19', '--limit', '1', '--server', url]);
    expect(capped.stdout.trim().split('\n')).toHaveLength(2);
    expect(capped.stderr).toMatch(/^… 1 run shown of 2 that match \(1 succeeded, 1 failed\); the next page: the same command with --cursor \S+\n$/);
    const onlyFailed = await runtrail(['runs', 'ls', '--failed-with', 'error', '--search', 'trial', '--json', '--server', url]);
    expect(JSON.parse(onlyFailed.stdout).runs.map((r: { id: string }) => r.id)).toEqual([child.id]);

    const showChild = await runtrail(['runs', 'show', child.id, '--server', url]);
    expect(showChild.stdout).toContain('status     failed (error)');
    expect(showChild.stdout).toContain(`parent     ${parent.id}`);
    expect(showChild.stdout).toContain('labels     lr=0.1,seed=3');
    // The traceback keeps its lines and indentation.
    expect(showChild.stdout).toContain(
      'error (error):\n  Traceback (most recent call last):\n    File "train.py", line 3, in <module>\n      main()\n  ValueError: lr too high',
    );
    // Once: the error that ended the run is not repeated as its "last error".
    expect(showChild.stdout.split('ValueError: lr too high')).toHaveLength(2);
    const showParent = await runtrail(['runs', 'show', parent.id, '--server', url]);
    expect(showParent.stdout).toContain(`children   1: 1 failed (runtrail runs ls --parent ${parent.id})`);
    expect(showChild.stdout).not.toContain('children ');
    expect(showParent.stdout).toContain('input:\n  {\n    "trials": 2\n  }');
    expect(showParent.stdout).toContain('output:\n  {\n    "best": {\n      "lr": 0.01,\n      "score": 0.93\n    }\n  }');
  });

  it('prints its version, and serve --help shows each default', async () => {
    const version = await runtrail(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const help = await runtrail(['serve', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--port <value>\s+port to listen on.*\(env RUNTRAIL_PORT, default 4310\)/);
    expect(help.stdout).toMatch(/--data-dir <value>.*default \.\/\.runtrail\)/);
    expect(help.stdout).toMatch(/--concurrency <value>.*default 4\)/);
  });

  it("help COMMAND SUBCOMMAND shows that subcommand; an unknown name is one line naming the nearest, also a group's subcommand typed alone", async () => {
    // Before: `help runs ls` showed the help of `runs`, and `help nosuch` printed the whole help on stderr.
    for (const args of [['help', 'runs', 'ls'], ['runs', 'help', 'ls']]) {
      const help = await runtrail(args);
      expect({ args, code: help.code, first: help.stdout.split('\n')[0] }).toEqual({ args, code: 0, first: 'Usage: runtrail runs ls|list [options]' });
    }
    const unknown = await runtrail(['help', 'tial']);
    expect([unknown.code, unknown.stdout, unknown.stderr]).toEqual([2, '', "runtrail: invalid_request: unknown command 'tial' (did you mean tail?); `runtrail --help` shows the usage\n"]);
    // Before: `runtrail show ID` named nothing; `show` is `runs show`, as a kubectl or gh user types it first.
    const show = await runtrail(['show', 'some-id']);
    expect([show.code, show.stderr]).toEqual([2, "runtrail: invalid_request: unknown command 'show' (did you mean runs show?); `runtrail --help` shows the usage\n"]);
    const ls = await runtrail(['ls']);
    expect(ls.stderr).toBe("runtrail: invalid_request: unknown command 'ls' (did you mean one of runs ls, tokens ls, artifacts ls?); `runtrail --help` shows the usage\n");
  });

  it("every client command's help says how to reach a server (--server, RUNTRAIL_URL) and where the token goes (RUNTRAIL_TOKEN)", async () => {
    // Before: `runtrail tail --help` named neither; only `runtrail --help` did.
    for (const path of [['tail'], ['runs', 'ls'], ['tokens', 'create'], ['exec'], ['export']]) {
      const global = helpOf(path).split('\nGlobal Options:\n')[1] ?? '';
      expect({ path, global }).toEqual({ path, global: expect.stringMatching(/^ {2}--server <url> [^]*RUNTRAIL_URL[^]*RUNTRAIL_TOKEN/) });
    }
    // Commands that serve (or copy a data dir) talk to no server: no --server in their help.
    for (const command of ['serve', 'demo', 'config', 'migrate']) expect(helpOf([command])).not.toContain('Global Options');
    // The binary prints the same help (helpOf reads it in-process: a spawn per command took most of this file's time).
    expect((await runtrail(['tail', '--help'])).stdout).toContain(helpOf(['tail']));
  });

  it("the README's CLI synopsis names every command and every option each takes", async () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const synopsis = /\n## CLI\n[^]*?```\n([^]*?)```/.exec(readme)![1]!;
    const commandsOf = (help: string) =>
      [...(/\nCommands:\n([^]*?)(\n\n|$)/.exec(help)?.[1] ?? '').matchAll(/^ {2}([a-z]+)(?:\|[a-z]+)? /gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    const missing: string[] = [];
    const check = (path: string[]) => {
      const stdout = helpOf(path);
      const subcommands = commandsOf(stdout);
      if (subcommands.length > 0) {
        for (const sub of subcommands) check([...path, sub]);
        return;
      }
      const usage = `runtrail ${path.join(' ')}`;
      if (!new RegExp(`(^|[\\s|])${path.at(-1)}(\\||\\s|$)`, 'm').test(synopsis)) missing.push(usage);
      // serve, config and demo take one flag per configuration key: the Configuration table's, tested in the server.
      const own = stdout.split(/\n {2}--config <file>/)[0]!;
      for (const [, short, flag] of own.matchAll(/^ {2}(?:(-\w), )?(--[\w-]+)/gm)) {
        const named = (f: string) => new RegExp(`[[ |]${f}[\\] |]`).test(synopsis);
        if (flag !== '--help' && !named(flag!) && !(short && named(short))) missing.push(`${usage} ${flag}`);
      }
    };
    for (const command of commandsOf(helpOf([]))) check([command]);
    expect(missing).toEqual([]);
  });

  it('tails a run live to its end and exits 1 when it failed', async () => {
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'tailed' });
    const tail = runtrail(['tail', run.id, '--server', url]);
    // The tail follows the run live before it moves (its stream counts as an observer).
    await waitUntil(async () => ((await client.getRun(run.id)) as { observers?: number }).observers === 1, { what: 'the tail live on the run' });
    for (let i = 1; i <= 5; i++) run.progress(i, 5);
    await run.fail(new Error('judge model unavailable'));
    const result = await tail;
    expect(result.stdout).toContain('100%');
    expect(result.stdout).toContain(`run ${run.id} ended failed (error: judge model unavailable)`);
    // Piped, a line per change: the run's end once (before, again as "(ended)" when the stream closed).
    expect(result.stdout.split('\n').filter((line) => /^\[[#. ]+\]\s+\d+% failed /.test(line))).toHaveLength(1);
    expect(result.code).toBe(1);
  });

  it('tail --json prints the run as it ended on stdout, the status line on stderr, and exits 1 when it failed', async () => {
    // Before: tail had no --json (unknown option, exit 2), though `start --follow --json` had.
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'tailed as json' });
    const tail = runtrail(['tail', run.id, '--json', '--server', url]);
    run.progress(1, 2);
    await run.fail(new Error('judge model unavailable'));
    const result = await tail;
    expect(result.code, result.stderr).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ id: run.id, status: 'failed', error: { message: 'judge model unavailable' } });
    // An ended run's line says nothing of the stream ("(live)" beside "failed" read as if it went on).
    expect(result.stderr).toMatch(/ failed {2}1\/2\n$/);
    const both = await runtrail(['tail', run.id, '--json', '--events', '--server', url]);
    expect([both.code, both.stderr]).toEqual([2, "runtrail: invalid_request: option '--json' cannot be used with option '--events'; `runtrail tail --help` shows the usage\n"]);
  });

  it('tail of a run that already ended, piped, prints its end once, without "(live)" or "(connecting …)" beside it', async () => {
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'ended before a piped tail' });
    run.progress(3, 10);
    await run.succeed();
    const result = await runtrail(['tail', run.id, '--server', url]);
    expect(result.code, result.stderr).toBe(0);
    const ended = result.stdout.split('\n').filter((line) => line.startsWith('[') && line.includes(' succeeded'));
    expect(ended, result.stdout).toEqual(['[#######.................]  30% succeeded  3/10']);
    expect(result.stdout).toContain(`run ${run.id} ended succeeded`);
  });

  it('tail --events of a run that already ended prints every event from the first, then how it ended', async () => {
    // Before: nothing but the end line, as the stored snapshot's seq (the end) counted as printed.
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'ended before the tail' });
    for (let i = 1; i <= 3; i++) run.progress(i, 3);
    await run.succeed();
    const result = await runtrail(['tail', run.id, '--events', '--server', url]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    const progress = lines.filter((line) => / progress /.test(line));
    expect(progress.map((line) => JSON.parse(line.split(' ').slice(2).join(' ')).done)).toEqual([1, 2, 3]);
    expect(lines.map((line) => Number(line.split(' ')[0])).slice(0, -1)).toEqual(Array.from({ length: lines.length - 1 }, (_, i) => i + 1));
    expect(lines.at(-2)).toMatch(/^\d+ run\.succeeded /);
    expect(lines.at(-1)).toBe(`run ${run.id} ended succeeded`);
  });

  it('tail --events of a run longer than a watcher keeps (6,000 events) still prints every event from the first', async () => {
    // A watcher reads only a long run's latest 5,000 events unless it asks for the whole log (after: 0).
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'long before the tail' });
    for (let start = 0; start < 6000; start += 3000) {
      const events = Array.from({ length: 3000 }, (_, i) => ({ type: 'progress', data: { done: start + i + 1, total: 6000 } }));
      const response = await fetch(`${url}/api/v1/runs/${run.id}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }) });
      expect(response.status).toBe(200);
    }
    await run.succeed();
    const result = await runtrail(['tail', run.id, '--events', '--server', url]);
    expect(result.code).toBe(0);
    const seqs = result.stdout.trim().split('\n').slice(0, -1).map((line) => Number(line.split(' ')[0]));
    expect(seqs).toEqual(Array.from({ length: 6001 }, (_, i) => i + 1));
  });

  it('tail of a run that does not exist says so on stderr and draws no status line, exit 2', async () => {
    const result = await runtrail(['tail', 'no-such-run', '--server', url]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('runtrail: run_not_found: run no-such-run does not exist\n');
  });

  it('a reader that stops reading (| head) ends tail --events and export -o - at once and quietly, exit 141', async () => {
    // Before: export said "the connection was lost ... (EPIPE)" and exited 2.
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'piped' });
    for (let i = 0; i < 5000; i++) run.count('steps');
    await run.artifact('big.bin', new Uint8Array(4 * 1024 * 1024));
    await run.succeed();
    for (const args of [['tail', run.id, '--events'], ['export', run.id, '-o', '-', '--no-progress']]) {
      const child = spawnCli([...args, '--server', url]);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d));
      // `head -c 1`: the first bytes read, then the pipe closed.
      await once(child.stdout!, 'data');
      child.stdout!.destroy();
      const [code] = (await once(child, 'exit')) as [number | null];
      expect({ args: args[0], code, stderr }).toEqual({ args: args[0], code: 141, stderr: '' });
    }
  });

  it('exec whose reader stops reading (| head) stops the command, ends the run cancelled saying why, and exits 141', async () => {
    // Before: exec died of an unhandled EPIPE with a stack, and the run was failed with "write EPIPE".
    const child = spawnCli(['exec', '--name', 'piped-exec', '--server', url, '--', 'sh', '-c', 'while :; do echo line; done']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    await once(child.stdout!, 'data');
    child.stdout!.destroy();
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(141);
    expect(stderr).not.toMatch(/EPIPE|\n\s+at /);
    const runId = /runtrail: run (\S+) on /.exec(stderr)![1]!;
    const ended = await new RuntrailClient({ url }).getRun(runId);
    expect(ended.status).toBe('cancelled');
    expect(ended.error!.message).toBe("sh -c 'while :; do echo line; done' was stopped (its output's reader went away (stdout closed, as by | head)): sent SIGTERM, which ended it");
  });

  it('says clearly when a run does not exist or no server answers', async () => {
    const missing = await runtrail(['runs', 'show', 'no-such-run', '--server', url]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('run_not_found: run no-such-run does not exist');

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const down = await runtrail(['runs', 'ls', '--server', `http://127.0.0.1:${port}`]);
    expect(down.code).toBe(2);
    // The URL named: the user may not know whether --server, RUNTRAIL_URL or the default was used.
    expect(down.stderr).toBe(`runtrail: no server answers at http://127.0.0.1:${port} (ECONNREFUSED); start one with 'runtrail serve' or pass --server\n`);
    // tail too, at once: it used to retry under a "reconnecting" line for --give-up-after (30 s) before saying it.
    const tail = await runtrail(['tail', '01a22003-8dc8-7235-9aef-0608e89bc08d', '--server', `http://127.0.0.1:${port}`]);
    expect({ code: tail.code, stdout: tail.stdout, stderr: tail.stderr }).toEqual({ code: 2, stdout: '', stderr: down.stderr });

    // The API's URL (from a curl line) is not the server's: said, with the one to give.
    const api = await runtrail(['runs', 'ls', '--server', `${url}/api/v1`]);
    expect({ code: api.code, stderr: api.stderr }).toEqual({
      code: 2,
      stderr: `runtrail: invalid_request: --server ${url}/api/v1 is the API's URL; give the server's, without /api/v1: ${url}\n`,
    });
    const fromEnv = await runtrail(['runs', 'ls'], { RUNTRAIL_URL: `${url}/api/v1/runs` });
    expect(fromEnv.stderr).toBe(`runtrail: invalid_request: RUNTRAIL_URL ${url}/api/v1/runs is the API's URL; give the server's, without /api/v1: ${url}\n`);
  });

  it('refuses an empty value for a flag or an argument, naming it, where one was taken for no flag or refused by a name the user never typed', async () => {
    // `--server "$URL"` with URL unset quietly meant RUNTRAIL_URL or the default server.
    const cases: Array<[string[], string]> = [
      [['runs', 'ls', '--server', ''], '--server given an empty value; `runtrail runs ls --help` shows the usage'],
      [['runs', 'ls', '--search', ''], '--search given an empty value; `runtrail runs ls --help` shows the usage'],
      [['runs', 'show', ''], '<id> given an empty value; `runtrail runs show --help` shows the usage'],
      [['exec', '--name', '', '--', 'true'], '--name given an empty value; `runtrail exec --help` shows the usage'],
    ];
    for (const [args, message] of cases) {
      const result = await runtrail(args, { RUNTRAIL_URL: url });
      expect({ args, code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({ args, code: 2, stdout: '', stderr: `runtrail: invalid_request: ${message}\n` });
    }
    // A command's own arguments may be empty: they are its business.
    const exec = await runtrail(['exec', '--quiet', '--', 'sh', '-c', 'test -z "$1"', 'sh', ''], { RUNTRAIL_URL: url });
    expect(exec.code, exec.stderr).toBe(0);
  });
});

describe('runtrail tokens create on a server with auth off', () => {
  it('refuses an --expires-in longer than a token may live in the flag\'s words, not the API field\'s', async () => {
    for (const long of ['20000d', '99999999999999']) {
      const result = await runtrail(['tokens', 'create', 'forever', '--scope', 'viewer', '--expires-in', long, '--server', url]);
      expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
        code: 2,
        stdout: '',
        stderr: `runtrail: invalid_request: --expires-in ${long} is longer than a token may live, 3650d; leave --expires-in out for a token that never expires\n`,
      });
    }
  });

  it('makes the token, and says on stderr that this server does not check it yet, and that any node sharing its database with auth on does', async () => {
    const note = `runtrail: auth is off on ${url}, so that server does not check this token yet (it will once it runs with an admin token: --admin-token-file, RUNTRAIL_ADMIN_TOKEN); any node sharing its database with auth on checks it already\n`;
    const created = await runtrail(['tokens', 'create', 'for-later', '--scope', 'producer', '--server', url]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^\S{16,}\n$/);
    expect(created.stderr).toMatch(/^token \S+ \(producer\) created; the line above is its secret, shown this once\n/);
    expect(created.stderr.endsWith(note)).toBe(true);
    const asJson = await runtrail(['tokens', 'create', 'for-later-too', '--scope', 'viewer', '--json', '--server', url]);
    expect(asJson.code, asJson.stderr).toBe(0);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ name: 'for-later-too', scope: 'viewer' });
    expect(asJson.stderr).toBe(note);
  });
});

describe('runtrail config', () => {
  it('prints the effective configuration with flags > RUNTRAIL_* env > runtrail.json > defaults, naming each source', async () => {
    const cwd = tempDir('runtrail-config-cli-');
    try {
      writeFileSync(join(cwd.path, 'runtrail.json'), JSON.stringify({ port: 1111, leaseTtlMs: 5000, concurrency: 2 }));
      const result = await runtrail(
        ['config', '--port', '3333', '--reaper-interval-ms', '500', '--json'],
        { RUNTRAIL_PORT: '2222', RUNTRAIL_LEASE_TTL_MS: '6000' },
        cwd.path,
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const { config, origins, file } = JSON.parse(result.stdout);
      expect(file).toBe(join(cwd.path, 'runtrail.json'));
      expect([config.port, origins.port]).toEqual([3333, '--port']);
      expect([config.reaperIntervalMs, origins.reaperIntervalMs]).toEqual([500, '--reaper-interval-ms']);
      expect([config.leaseTtlMs, origins.leaseTtlMs]).toEqual([6000, 'RUNTRAIL_LEASE_TTL_MS']);
      expect([config.concurrency, origins.concurrency]).toEqual([2, file]);
      expect([config.host, origins.host]).toEqual(['127.0.0.1', 'default']);

      const table = await runtrail(['config', '--config', 'runtrail.json'], {}, cwd.path);
      expect(table.stdout).toMatch(/^leaseTtlMs\s+5000\s+\S*runtrail\.json$/m);
    } finally {
      cwd.remove();
    }
  });

  it('warns on stderr, one line each, about a misspelled RUNTRAIL_* variable, naming the nearest known one; serve logs it', async () => {
    const env = { RUNTRAIL_LEASE_TTL: '5', RUNTRAIL_URL: 'http://127.0.0.1:1', RUNTRAIL_TOKEN: 'x', RUNTRAIL_RUN_ID: 'r' };
    const result = await runtrail(['config', '--json'], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('runtrail: warning: unknown environment variable RUNTRAIL_LEASE_TTL, ignored (did you mean RUNTRAIL_LEASE_TTL_MS?)\n');
    expect(JSON.parse(result.stdout).config.leaseTtlMs).toBe(30_000);
    const data = tempDir('runtrail-env-warn-');
    const served = await serve(['--port', '0', '--data-dir', data.path, '--log-format', 'json'], { env });
    try {
      const warning = served.stdout().split('\n').filter((l) => l.includes('RUNTRAIL_LEASE_TTL,'));
      expect(warning, served.stdout()).toHaveLength(1);
      expect(JSON.parse(warning[0]!)).toMatchObject({ level: 40, msg: expect.stringContaining('did you mean RUNTRAIL_LEASE_TTL_MS?') });
      expect(served.stdout()).not.toMatch(/RUNTRAIL_(URL|TOKEN|RUN_ID)\b/);
    } finally {
      expect(await served.stop()).toBe(0);
      data.remove();
    }
  });

  it('demo refuses a --docs that is not a whole number as a usage error, before it serves anything', async () => {
    // Before: `--docs abc` started a server, then the demo handler refused "input.docs: ... received null".
    const data = tempDir('runtrail-demo-docs-');
    try {
      const result = await runtrail(['demo', '--docs', 'abc', '--port', '0', '--data-dir', join(data.path, 'data')]);
      expect([result.code, result.stdout, result.stderr]).toEqual([
        2,
        '',
        "runtrail: invalid_request: option '--docs <n>' argument 'abc' is invalid. give a whole number from 1 to 100000; `runtrail demo --help` shows the usage\n",
      ]);
      expect(existsSync(join(data.path, 'data'))).toBe(false);
    } finally {
      data.remove();
    }
  });

  it('names --database for a --database-url, the flag its variable RUNTRAIL_DATABASE_URL suggests, in serve and migrate', async () => {
    // Before: "unknown option '--database-url'" and no suggestion, the flag being too far from --database for commander's.
    for (const command of ['serve', 'migrate']) {
      const result = await runtrail([command, '--database-url', 'postgres://db/runtrail']);
      expect([result.code, result.stdout, result.stderr]).toEqual([
        2,
        '',
        `runtrail: invalid_request: unknown option '--database-url' (did you mean --database? the flag of RUNTRAIL_DATABASE_URL); \`runtrail ${command} --help\` shows the usage\n`,
      ]);
    }
  });

  it('demo stopped by SIGTERM while its run goes on does not say it is still serving', async () => {
    // Before: the run ended interrupted by the shutdown, and the demo then said "still serving; … Ctrl-C to stop" as it stopped.
    const data = tempDir('runtrail-demo-sigterm-');
    try {
      const child = spawnCli(['demo', '--docs', '100000', '--port', '0', '--data-dir', join(data.path, 'data'), '--log-level', 'warn']);
      let stdout = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d));
      const [, demoUrl, runId] = await waitUntil(() => /serving on (\S+)\n {2}dashboard: +\S+\/runs\/(\S+)\n/.exec(stdout) ?? undefined, {
        timeoutMs: 20_000,
        what: 'the demo to print its run',
      });
      // Signalled while the demo follows its run live, as a person's Ctrl-C or a service manager's stop comes.
      const seq = async () => ((await (await fetch(`${demoUrl}/api/v1/runs/${runId}`)).json()) as { snapshot: { seq: number } }).snapshot.seq;
      await waitUntil(async () => (await seq()) > 10, { timeoutMs: 20_000, what: 'the demo run to make progress' });
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
      expect(stdout).not.toContain('still serving');
    } finally {
      data.remove();
    }
  });

  it('refuses an invalid value with one line naming the key and where it came from (exit 2), for config and serve alike', async () => {
    for (const command of ['config', 'serve']) {
      const result = await runtrail([command, '--lease-ttl-ms', 'soon', '--port', '0']);
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/invalid configuration: leaseTtlMs \(--lease-ttl-ms = "soon"\)/);
    }
  });
});
