import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir } from '@runtrail/test-support';
import { BIN, runtrail as run, serve, type ServeProcess } from './harness.js';

/**
 * What the list commands (`runs ls`, `artifacts ls`, `tokens ls`) print, as a
 * script reads it: data on stdout, notices on stderr, one JSON shape.
 */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;

beforeAll(async () => {
  dir = tempDir();
  server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'warn']);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

// A zone far from UTC, so a table that printed local time would show it.
const runtrail = (args: string[]) => run([...args, '--server', server.url], { env: { TZ: 'America/New_York' } });

describe('list commands', () => {
  it('an empty list prints nothing on stdout and says so on stderr; --json is still an object with the plural key', async () => {
    // A run with no artifacts, on a server with no tokens: every list is empty.
    const { id } = await new RuntrailClient({ url: server.url }).createRun({ name: 'empty-lists' });
    const cases = [
      { args: ['runs', 'ls', '--name', 'no-such-run'], notice: 'no runs', key: 'runs' },
      { args: ['artifacts', 'ls', id], notice: 'no artifacts', key: 'artifacts' },
      { args: ['tokens', 'ls'], notice: 'no tokens', key: 'tokens' },
    ];
    for (const { args, notice, key } of cases) {
      const text = await runtrail(args);
      // `runtrail runs ls | wc -l` counts 0, not the notice.
      expect({ args, code: text.code, stdout: text.stdout, stderr: text.stderr }).toEqual({ args, code: 0, stdout: '', stderr: `${notice}\n` });
      const json = await runtrail([...args, '--json']);
      expect({ args, code: json.code, stderr: json.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(JSON.parse(json.stdout)).toMatchObject({ [key]: [] });
    }
  });

  it('--json of every list is an object whose plural key holds the items', async () => {
    const client = new RuntrailClient({ url: server.url });
    const handle = await client.createRun({ name: 'json-shapes' });
    const file = join(dir.path, 'notes.txt');
    writeFileSync(file, 'hello\n');
    expect((await runtrail(['artifacts', 'put', handle.id, file])).code).toBe(0);
    const token = JSON.parse((await runtrail(['tokens', 'create', 'lister', '--scope', 'viewer', '--json'])).stdout) as { id: string };

    const runs = JSON.parse((await runtrail(['runs', 'ls', '--name', 'json-shapes', '--json'])).stdout) as { runs: Array<{ id: string }> };
    expect(runs.runs.map((r) => r.id)).toEqual([handle.id]);
    const artifacts = JSON.parse((await runtrail(['artifacts', 'ls', handle.id, '--json'])).stdout) as { artifacts: Array<{ name: string }> };
    expect(artifacts.artifacts.map((a) => a.name)).toEqual(['notes.txt']);
    const tokens = JSON.parse((await runtrail(['tokens', 'ls', '--json'])).stdout) as { tokens: Array<{ id: string }> };
    expect(tokens.tokens.map((t) => t.id)).toContain(token.id);
    await handle.succeed();
  });

  it('tables say their times are UTC, and print them in UTC whatever the local zone', async () => {
    const client = new RuntrailClient({ url: server.url });
    const handle = await client.createRun({ name: 'utc-times' });
    await handle.succeed();
    const created = (await client.getRun(handle.id)).createdAt;
    const utc = new Date(created).toISOString().replace('T', ' ').slice(0, 19);

    const [header, row] = (await runtrail(['runs', 'ls', '--name', 'utc-times'])).stdout.trim().split('\n');
    expect(header).toMatch(/\sCREATED \(UTC\)\s/);
    expect(row).toContain(utc);
    // runs show says when it was made and when it ended, in the same words.
    const ended = (await client.getRun(handle.id)).finishedAt!;
    const show = (await runtrail(['runs', 'show', handle.id])).stdout;
    expect(show).toContain(`\ncreated    ${utc} UTC\nended      ${new Date(ended).toISOString().replace('T', ' ').slice(0, 19)} UTC\n`);

    const made = JSON.parse((await runtrail(['tokens', 'create', 'dated', '--scope', 'viewer', '--expires-in', '1d', '--json'])).stdout) as {
      id: string;
      expiresAt: number;
    };
    const tokens = (await runtrail(['tokens', 'ls'])).stdout.trim().split('\n');
    expect(tokens[0]).toMatch(/\sEXPIRES \(UTC\)\s+CREATED \(UTC\)$/);
    expect(tokens.find((line) => line.startsWith(made.id))).toContain(new Date(made.expiresAt).toISOString().replace('T', ' ').slice(0, 19));
  });

  it('runs ls --cursor shows the next page, which the note under a cut table names', async () => {
    const client = new RuntrailClient({ url: server.url });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const handle = await client.createRun({ name: 'paged' });
      await handle.succeed();
      ids.unshift(handle.id);
    }
    const rows = (stdout: string) => stdout.trim().split('\n').slice(1).map((line) => line.split(/\s+/)[0]);
    const first = await runtrail(['runs', 'ls', '--name', 'paged', '--limit', '2']);
    expect(rows(first.stdout)).toEqual(ids.slice(0, 2));
    const cursor = /the next page: the same command with --cursor (\S+)\n$/.exec(first.stderr)?.[1];
    expect(cursor, first.stderr).toBe(ids[1]);
    const next = await runtrail(['runs', 'ls', '--name', 'paged', '--limit', '2', '--cursor', cursor!]);
    expect({ code: next.code, rows: rows(next.stdout), stderr: next.stderr }).toEqual({ code: 0, rows: ids.slice(2), stderr: '' });
    const json = JSON.parse((await runtrail(['runs', 'ls', '--name', 'paged', '--limit', '2', '--cursor', cursor!, '--json'])).stdout) as {
      runs: Array<{ id: string }>;
      nextCursor: string | null;
    };
    expect({ ids: json.runs.map((r) => r.id), nextCursor: json.nextCursor }).toEqual({ ids: ids.slice(2), nextCursor: null });
  });

  it('runs ls --parent of a run that does not exist says so, exit 2; of one without children, no runs', async () => {
    const missing = '01a2222d-0000-7000-8000-000000000000';
    for (const json of [[], ['--json']]) {
      const result = await runtrail(['runs', 'ls', '--parent', missing, ...json]);
      expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
        code: 2,
        stdout: '',
        stderr: `runtrail: run_not_found: run ${missing} does not exist\n`,
      });
    }
    const childless = await new RuntrailClient({ url: server.url }).createRun({ name: 'childless' });
    const none = await runtrail(['runs', 'ls', '--parent', childless.id]);
    expect({ code: none.code, stdout: none.stdout, stderr: none.stderr }).toEqual({ code: 0, stdout: '', stderr: 'no runs\n' });
    await childless.succeed();
  });

  it('runs ls on a terminal cuts a long name and labels to 40 characters, so the row stays readable; piped, they are whole', async () => {
    const name = `nightly-${'n'.repeat(192)}`;
    const label = `note=${'v'.repeat(300)}`;
    const run = await new RuntrailClient({ url: server.url }).createRun({ name, labels: { note: label.slice(5) } });
    const args = [process.execPath, BIN, 'runs', 'ls', '--name', name, '--server', server.url];
    // script(1) gives the command a terminal for its stdout.
    const quoted = args.map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(' ');
    const { stdout: screen } = await promisify(execFile)('script', ['-qec', quoted, '/dev/null'], { encoding: 'utf8' });
    const row = screen.split(/\r?\n/)[1]!;
    expect(row).toContain(`  ${name.slice(0, 39)}…  running`);
    expect(row).toMatch(new RegExp(`  ${label.slice(0, 39)}…$`));
    expect(row).not.toContain(name);

    const piped = await runtrail(['runs', 'ls', '--name', name]);
    expect(piped.stdout).toContain(`  ${name}  running`);
    expect(piped.stdout).toContain(label);
    await run.succeed();
  });

  it('runs ls on a terminal too narrow for a whole row leaves out the least needed columns, says which, and fits; piped, every column', async () => {
    const client = new RuntrailClient({ url: server.url });
    const parent = await client.createRun({ name: 'narrow-parent' });
    const child = await client.createRun({ name: 'narrow-child', parentId: parent.id, labels: { team: 'search', model: 'gpt-4' } });
    child.progress(3, 10);
    await child.flush();
    const onTerminal = async (columns: number) => {
      const args = [process.execPath, BIN, 'runs', 'ls', '--parent', parent.id, '--server', server.url].map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`);
      // script(1) gives the command a terminal, stty its width.
      const { stdout } = await promisify(execFile)('script', ['-qec', `stty cols ${columns} rows 50; ${args.join(' ')}`, '/dev/null'], { encoding: 'utf8' });
      return stdout.split(/\r?\n/).filter((line) => line !== '');
    };
    // Before: a row of ~190 characters (two ids, a time, labels), wrapped by an 80- or 120-column terminal.
    const narrow = await onTerminal(110);
    expect(narrow[0]).toMatch(/^ID +NAME +STATUS +FAILED +PROGRESS +OK\/FAIL\/RETRY +DURATION$/);
    expect(narrow[1]).toContain(`${child.id}  narrow-child  running`);
    expect(narrow[1]).not.toContain(parent.id);
    for (const line of narrow.slice(0, 2)) expect(line.length).toBeLessThanOrEqual(110);
    expect(narrow[2]).toBe("PARENT, LABELS, CREATED (UTC) left out to fit the terminal's 110 columns: runs show ID has them, and piped or --json every column is there");
    // An 80-column terminal: the columns a row needs are still ~100 wide with a long name, so names are cut to fit.
    const longName = 'evaluate-gpt-4-on-the-long-context-suite';
    const long = await client.createRun({ name: longName, parentId: parent.id });
    const eighty = await onTerminal(80);
    expect(eighty[0]).toMatch(/^ID +NAME +STATUS +FAILED +PROGRESS *$/);
    for (const line of eighty.slice(0, 3)) expect(line.length).toBeLessThanOrEqual(80);
    const cutName = new RegExp(`^${long.id}  (${longName.slice(0, 11)}[a-z0-9-]*)…  +running`).exec(eighty.find((line) => line.startsWith(long.id))!);
    expect(cutName?.[1]?.length).toBeGreaterThanOrEqual(11);
    expect(eighty.find((line) => line.startsWith(child.id))).toMatch(new RegExp(`^${child.id}  narrow-child +running`));
    // Narrower than the id and the status columns leave a readable name room for: it wraps whole, not cut to nothing.
    expect((await onTerminal(60)).join('\n')).toContain(longName);
    await long.succeed();
    // Wide enough: every column, no note.
    const wide = await onTerminal(250);
    expect(wide[0]).toMatch(/CREATED \(UTC\) +PARENT +LABELS$/);
    expect(wide).toHaveLength(3); // the header and both children's rows: no note
    const piped = await runtrail(['runs', 'ls', '--parent', parent.id]);
    expect(piped.stdout.split('\n')[0]).toMatch(/PARENT +LABELS$/);
    expect(piped.stderr).toBe('');
    await child.succeed();
    await parent.succeed();
  });
});
