import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { TcpProxy } from '@runtrail/test-support/tcp-proxy';
import { BIN, runtrail, spawnCli } from './harness.js';

/**
 * Artifacts from the command line (issue 16): `runtrail exec --collect` with
 * a real Python script, and `runtrail artifacts ls|get|put`, against a real
 * server, as a user runs them.
 */
const RENDER = fileURLToPath(new URL('./fixtures/render.py', import.meta.url));

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeAll(async () => {
  dir = tempDir('runtrail-cli-artifacts-');
  server = await startServer({ port: 0, dataDir: join(dir.path, 'server'), logLevel: 'silent' });
  client = new RuntrailClient({ url: server.url });
});
afterAll(async () => {
  await server.close();
  dir.remove();
});

describe('runtrail exec --collect and runtrail artifacts', () => {
  it('`runtrail exec --collect out/ -- python3 render.py` stores the files the script wrote, in the order written; ls, get and put work on them', async () => {
    const work = join(dir.path, 'work');
    mkdirSync(join(work, 'out'), { recursive: true });
    // There before the command ran: not its output, not collected.
    writeFileSync(join(work, 'out', 'stale.txt'), 'from an earlier run');
    const result = await runtrail(['exec', '--server', server.url, '--collect', 'out/', '--', 'python3', RENDER], { cwd: work, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/stored 3 artifact\(s\)/);
    const runId = /runtrail: run (\S+) on /.exec(result.stderr)![1]!;

    const stored = await client.listArtifacts(runId);
    expect(stored.map((a) => [a.ordinal, a.name, a.contentType])).toEqual([
      [1, '01_input.txt', 'text/plain; charset=utf-8'],
      [2, '02_result.json', 'application/json'],
      [3, '03_image.png', 'image/png'],
      // What the script printed, after its files (exec --server keeps the whole output there).
      [4, 'output.log', 'text/plain; charset=utf-8'],
    ]);
    const run = await client.getRun(runId);
    expect(run.status).toBe('succeeded');
    expect(run.snapshot.artifacts.filter((a) => a.sha256 !== null).map((a) => a.name)).toEqual(stored.map((a) => a.name));

    const ls = await runtrail(['artifacts', 'ls', runId, '--server', server.url]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/1\s+01_input\.txt\s+text\/plain/);
    expect(ls.stdout).toMatch(/3\s+03_image\.png\s+image\/png/);

    const download = join(dir.path, 'image-copy.png');
    const get = await runtrail(['artifacts', 'get', runId, '03_image.png', '-o', download, '--server', server.url]);
    expect(get.code, get.stderr).toBe(0);
    expect(readFileSync(download).equals(readFileSync(join(work, 'out', '03_image.png')))).toBe(true);

    // -o a folder: the file goes in it under its own name, as cp does; a folder that is not
    // there, or a file in the way, is one line saying so, before anything is downloaded.
    const folder = join(dir.path, 'downloads');
    mkdirSync(folder);
    expect((await runtrail(['artifacts', 'get', runId, '03_image.png', '-o', folder, '--server', server.url])).code).toBe(0);
    expect(readFileSync(join(folder, '03_image.png')).equals(readFileSync(download))).toBe(true);
    for (const [output, problem] of [
      [join(dir.path, 'missing', 'x.png'), `the folder ${join(dir.path, 'missing')} does not exist`],
      [join(dir.path, 'missing') + '/', `the folder ${join(dir.path, 'missing')} does not exist`],
      [join(download, 'x.png'), `${download} is not a folder`],
    ] as const) {
      const wrong = await runtrail(['artifacts', 'get', runId, '03_image.png', '-o', output, '--server', server.url]);
      expect(wrong.code, output).toBe(2);
      const target = output.endsWith('/') ? join(output, '03_image.png') : output;
      expect(wrong.stderr).toBe(`runtrail: invalid_request: cannot write ${target}: ${problem}; nothing was downloaded\n`);
    }
    expect(readdirSync(dir.path)).not.toContain('missing');

    // put needs a running run.
    const live = await client.createRun({ name: 'manual' });
    const notes = join(dir.path, 'notes.md');
    writeFileSync(notes, '# notes\n');
    const put = await runtrail(['artifacts', 'put', live.id, notes, '--metadata', '{"by":"cli"}', '--server', server.url]);
    expect(put.code, put.stderr).toBe(0);
    expect(await client.listArtifacts(live.id)).toMatchObject([{ ordinal: 1, name: 'notes.md', contentType: 'text/markdown; charset=utf-8', metadata: { by: 'cli' } }]);
    // --json, as ls has it: the stored artifact as `artifacts ls --json` lists it (before: an unknown option).
    const putJson = await runtrail(['artifacts', 'put', live.id, notes, '--name', 'notes-again.md', '--json', '--server', server.url]);
    expect(putJson.code, putJson.stderr).toBe(0);
    expect(JSON.parse(putJson.stdout)).toEqual((await client.listArtifacts(live.id)).find((a) => a.name === 'notes-again.md'));
    const refused = await runtrail(['artifacts', 'put', runId, notes, '--server', server.url]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/run_already_terminal/);
    live.close();

    // The same run, exported and imported into another server.
    const other = await startServer({ port: 0, dataDir: join(dir.path, 'other'), logLevel: 'silent' });
    try {
      const file = join(dir.path, 'run.tar');
      const exported = await runtrail(['export', runId, '-o', file, '--server', server.url]);
      expect(exported.code, exported.stderr).toBe(0);
      const intoFolder = await runtrail(['export', runId, '-o', folder, '--server', server.url]);
      expect(intoFolder.stderr).toBe(`runtrail: wrote ${join(folder, `runtrail-${runId}.tar`)}\n`);
      const imported = await runtrail(['import', file, '--server', other.url]);
      expect(imported.code, imported.stderr).toBe(0);
      // The id alone on stdout (`id=$(runtrail import run.tar)`), as retry prints its run's; the summary on stderr.
      expect(imported.stdout).toBe(`${runId}\n`);
      expect(imported.stderr).toMatch(new RegExp(`^imported run ${runId} \\(python3 render\\.py, succeeded, \\d+ events, \\d+ artifacts\\)\n$`));
      expect(await new RuntrailClient({ url: other.url }).listArtifacts(runId)).toEqual(stored);
      // With --json, the run as the server answers it; again after a delete, as a script would redo it.
      expect((await runtrail(['delete', runId, '--server', other.url])).code).toBe(0);
      const asJson = await runtrail(['import', file, '--json', '--server', other.url]);
      expect(asJson.code, asJson.stderr).toBe(0);
      expect(JSON.parse(asJson.stdout)).toMatchObject({ id: runId, status: 'succeeded' });
      // Again with the run here: an import repeated (say, after a lost answer) succeeds and says nothing changed.
      const again = await runtrail(['import', file, '--server', other.url]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toBe(`${runId}\n`);
      expect(again.stderr).toMatch(new RegExp(`^run ${runId} \\(python3 render\\.py, succeeded, \\d+ events, \\d+ artifacts\\) was here already as the archive holds it; nothing changed\n$`));
    } finally {
      await other.close();
    }
  });

  it('--collect stores a file while the command still runs, once it stopped changing, and its last version when the command ends', async () => {
    const work = join(dir.path, 'live');
    mkdirSync(join(work, 'out'), { recursive: true });
    // The command writes a checkpoint, then waits (up to 20 s) until the run lists it: it exits 7 if
    // it never shows while it runs. Then it rewrites the checkpoint and writes a second file.
    const script = [
      'import json, os, sys, time, urllib.request',
      'open("out/checkpoint.txt", "w").write("step 1")',
      'url = os.environ["RUNTRAIL_URL"] + "/api/v1/runs/" + os.environ["RUNTRAIL_RUN_ID"] + "/artifacts"',
      'deadline = time.time() + 20',
      'while not any(a["name"] == "checkpoint.txt" for a in json.load(urllib.request.urlopen(url))["artifacts"]):',
      '    if time.time() > deadline: sys.exit(7)',
      '    time.sleep(0.05)',
      'open("out/checkpoint.txt", "w").write("step 2")',
      'open("out/final.txt", "w").write("done")',
    ].join('\n');
    writeFileSync(join(work, 'job.py'), script);
    const result = await runtrail(['exec', '--server', server.url, '--collect', 'out', '--collect-every', '100ms', '--', 'python3', 'job.py'], {
      cwd: work,
      env: { RUNTRAIL_URL: '' },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr.split('\n')).toContain(`runtrail: stored 2 artifact(s) from ${join(work, 'out')}: checkpoint.txt, final.txt`);
    const runId = /runtrail: run (\S+) on /.exec(result.stderr)![1]!;
    expect((await client.listArtifacts(runId)).map((a) => [a.ordinal, a.name])).toEqual([
      [1, 'checkpoint.txt'],
      [2, 'final.txt'],
    ]);
    expect(await (await client.fetchArtifact(runId, 'checkpoint.txt')).text()).toBe('step 2');
  });

  it('a wrapped command stores artifacts of its own run directly, from RUNTRAIL_RUN_ID and RUNTRAIL_URL (curl -T, runtrail artifacts put)', async () => {
    const work = join(dir.path, 'direct');
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'verdict.txt'), 'safe\n');
    const script = [
      'curl -sSf -T verdict.txt "$RUNTRAIL_URL/api/v1/runs/$RUNTRAIL_RUN_ID/artifacts/01_verdict.txt" -H "x-runtrail-client: curl" -H \'x-runtrail-metadata: {"by":"curl"}\' >/dev/null',
      `"${process.execPath}" "${BIN}" artifacts put "$RUNTRAIL_RUN_ID" verdict.txt --name 02_again.txt`,
    ].join(' && ');
    const result = await runtrail(['exec', '--server', server.url, '--', 'sh', '-c', script], { cwd: work, env: { RUNTRAIL_URL: '' } });
    expect(result.code, result.stderr).toBe(0);
    const runId = /runtrail: run (\S+) on /.exec(result.stderr)![1]!;
    expect((await client.listArtifacts(runId)).map((a) => [a.ordinal, a.name, a.metadata])).toEqual([
      [1, '01_verdict.txt', { by: 'curl' }],
      [2, '02_again.txt', null],
      [3, 'output.log', null],
    ]);
    expect(await (await client.fetchArtifact(runId, '02_again.txt')).text()).toBe('safe\n');
  });

  it('a collected file the server refuses is reported, its name quoted, with why; the others are stored', async () => {
    const small = await startServer({ port: 0, dataDir: join(dir.path, 'refusing'), logLevel: 'silent', maxArtifactBytes: 1000 });
    try {
      const work = join(dir.path, 'refused');
      mkdirSync(work, { recursive: true });
      const script = `mkdir -p out && head -c 2000 /dev/zero > out/big.bin && echo ok > out/small.txt && echo x > "out/bad$(printf '\\001')line.txt"`;
      const result = await runtrail(['exec', '--server', small.url, '--collect', 'out/', '--', 'sh', '-c', script], { cwd: work, env: { RUNTRAIL_URL: '' } });
      expect(result.code, result.stderr).toBe(0);
      const lines = result.stderr.split('\n');
      expect(lines, result.stderr).toContain(`runtrail: stored 1 artifact(s) from ${join(work, 'out')}: small.txt`);
      expect(lines, result.stderr).toContain(
        'runtrail: "big.bin" was not stored as an artifact: the upload (2000 bytes) is too large: an artifact may have at most 1000 bytes; nothing was stored',
      );
      expect(lines, result.stderr).toContain('runtrail: "bad\\u0001line.txt" was not stored as an artifact: its name contains a control character');
    } finally {
      await small.close();
    }
  });

  it('a command that puts a file where its --collect folder was still ends its run as it exited, with a line saying what was not stored', async () => {
    const work = join(dir.path, 'replaced');
    mkdirSync(join(work, 'out'), { recursive: true });
    const result = await runtrail(['exec', '--server', server.url, '--collect', 'out', '--', 'sh', '-c', 'rmdir out && echo x > out && exit 3'], {
      cwd: work,
      env: { RUNTRAIL_URL: '' },
    });
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr.split('\n')).toContain(
      `runtrail: cannot read ${join(work, 'out')} at the end (ENOTDIR): files written there since the last look were not stored`,
    );
    const runId = /runtrail: run (\S+) on /.exec(result.stderr)![1]!;
    const run = await client.getRun(runId);
    expect(run.status).toBe('failed');
    expect(run.error?.message).toContain('exited with code 3');
  });

  it('a --collect that stored nothing says so: a folder that never appeared (a typo), or one the command wrote nothing new to', async () => {
    const work = join(dir.path, 'typo');
    mkdirSync(join(work, 'same'), { recursive: true });
    const said = [
      ['ouptut', 'mkdir output && echo x > output/a.txt', 'there is no such folder (did the command write its files elsewhere?)'],
      ['same', 'true', 'the command wrote no new file there'],
    ];
    for (const [folder, script, why] of said) {
      const result = await runtrail(['exec', '--server', server.url, '--collect', folder!, '--', 'sh', '-c', script!], { cwd: work, env: { RUNTRAIL_URL: '' } });
      expect({ folder, code: result.code }, result.stderr).toEqual({ folder, code: 0 });
      expect(result.stderr.split('\n')).toContain(`runtrail: stored no artifact from ${join(work, folder!)}: ${why}`);
    }
  });

  it('long uploads and downloads say how far they got; a file over the limit is refused before it is sent; a cut download leaves no file', async () => {
    const MiB = 1024 * 1024;
    const small = await startServer({ port: 0, dataDir: join(dir.path, 'small'), logLevel: 'silent', maxArtifactBytes: 4 * MiB });
    const proxy = await TcpProxy.start(server.url);
    let proxyClosed: Promise<void> | null = null;
    try {
      const smallClient = new RuntrailClient({ url: small.url });
      const run = await smallClient.createRun({ name: 'transfers' });
      const work = join(dir.path, 'transfers');
      mkdirSync(work, { recursive: true });
      const three = randomBytes(3 * MiB);
      writeFileSync(join(work, 'big.bin'), three);

      const put = await runtrail(['artifacts', 'put', run.id, 'big.bin', '--progress', '--server', small.url], { cwd: work });
      expect(put.code, put.stderr).toBe(0);
      expect(put.stderr.trimEnd().split('\n').at(-1)).toBe('runtrail: uploading big.bin: 3.0 MiB of 3.0 MiB (100%)');
      // Not a terminal and not asked for: no progress lines in a script's log.
      const quiet = await runtrail(['artifacts', 'put', run.id, 'big.bin', '--name', 'again.bin', '--server', small.url], { cwd: work });
      expect(quiet.code, quiet.stderr).toBe(0);
      expect(quiet.stderr).toBe('');

      const get = await runtrail(['artifacts', 'get', run.id, 'big.bin', '-o', 'copy.bin', '--progress', '--server', small.url], { cwd: work });
      expect(get.code, get.stderr).toBe(0);
      expect(get.stderr).toContain('runtrail: downloading big.bin: 3.0 MiB of 3.0 MiB (100%)\n');
      expect(readFileSync(join(work, 'copy.bin')).equals(three)).toBe(true);

      // Its length goes with it, so the server refuses it from that, before reading it.
      writeFileSync(join(work, 'five.bin'), Buffer.alloc(5 * MiB, 1));
      const over = await runtrail(['artifacts', 'put', run.id, 'five.bin', '--server', small.url], { cwd: work });
      expect(over.code).toBe(2);
      expect(over.stderr).toBe(
        'runtrail: payload_too_large: the upload (5242880 bytes) is too large: an artifact may have at most 4194304 bytes; nothing was stored\n',
      );
      const missing = await runtrail(['artifacts', 'put', run.id, 'nope.bin', '--server', small.url], { cwd: work });
      expect(missing.stderr).toBe(`runtrail: invalid_request: no such file: ${join(work, 'nope.bin')}\n`);

      // A download cut midway: no file at the target, nothing half-written beside it. (Large, so that
      // it is still under way when the test stops it: the bytes left cannot all be in socket buffers.)
      const long = await client.createRun({ name: 'cut-download' });
      await client.putArtifact(long.id, 'cut.bin', randomBytes(32 * MiB));
      const before = new Set(readdirSync(work));
      const child = spawnCli(['artifacts', 'get', long.id, 'cut.bin', '--server', proxy.url], { cwd: work });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d));
      const exited = once(child, 'exit');
      const partial = join(work, '.cut.bin.runtrail-partial');
      await waitUntil(() => existsSync(partial) && statSync(partial).size > 0, { what: 'the download to be under way', intervalMs: 1 });
      // Stop the bytes where they are, then drop the connection.
      proxy.freeze();
      expect(existsSync(join(work, 'cut.bin'))).toBe(false);
      proxyClosed = proxy.close();
      const [code] = (await exited) as [number | null];
      expect(code).toBe(2);
      expect(stderr).toMatch(/^runtrail: unavailable: the connection was lost after [\d.]+ (KiB|MiB) of 32\.0 MiB \(\d+%\) \(.+\); nothing was written to .+cut\.bin; try again\n$/);
      expect(new Set(readdirSync(work))).toEqual(before);
      run.close();
      long.close();
    } finally {
      await (proxyClosed ?? proxy.close());
      await small.close();
    }
  });

  it('`runtrail export ID -o - | runtrail import - --server OTHER` copies a run through a pipe, artifacts and all', async () => {
    const made = await client.createRun({ name: 'piped' });
    await made.artifact('notes.txt', 'through a pipe');
    await made.succeed({ ok: true });
    const other = await startServer({ port: 0, dataDir: join(dir.path, 'piped-into'), logLevel: 'silent' });
    try {
      const env = { ...process.env, RUNTRAIL_URL: '' };
      const exporter = spawn(process.execPath, [BIN, 'export', made.id, '-o', '-', '--server', server.url], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      const importer = spawn(process.execPath, [BIN, 'import', '-', '--server', other.url], { env, stdio: [exporter.stdout, 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      importer.stdout.on('data', (d: Buffer) => (stdout += d));
      importer.stderr.on('data', (d: Buffer) => (stderr += d));
      const [[exported], [imported]] = await Promise.all([once(exporter, 'exit'), once(importer, 'exit')]);
      expect(exported).toBe(0);
      expect(imported, stderr).toBe(0);
      // Before: "no such file: <cwd>/-".
      expect(stdout).toBe(`${made.id}\n`);
      const copied = new RuntrailClient({ url: other.url });
      expect(await copied.getRun(made.id)).toMatchObject({ status: 'succeeded', output: { ok: true } });
      expect(await (await copied.fetchArtifact(made.id, 'notes.txt')).text()).toBe('through a pipe');
    } finally {
      await other.close();
    }
  });

  it('export -o - to a terminal is refused, as import - from one is: a tar is not for the screen', async () => {
    // Before: the archive's bytes (NULs, tar headers) were written to the terminal.
    const made = await client.createRun({ name: 'not for a terminal' });
    await made.succeed();
    // script(1) gives the command a terminal for its stdout, as a person's shell would.
    const command = [process.execPath, BIN, 'export', made.id, '-o', '-', '--server', server.url].map((arg) => `'${arg}'`).join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, RUNTRAIL_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(screen.replace(/\r/g, '')).toBe(
      'runtrail: invalid_request: stdout is a terminal: -o - writes a binary archive; pipe it (runtrail export ID -o - | runtrail import -) or name a file with -o\n',
    );
  });

  it('exporting a run that has not ended writes it and says an import will refuse it until it ends', async () => {
    const live = await client.createRun({ name: 'still-going' });
    try {
      live.progress(1, 10);
      await live.flush();
      const file = join(dir.path, 'live.tar');
      const exported = await runtrail(['export', live.id, '-o', file, '--server', server.url], { env: { RUNTRAIL_URL: '' } });
      expect(exported.code, exported.stderr).toBe(0);
      expect(exported.stderr).toBe(
        `runtrail: wrote ${file}\n` +
          `runtrail: run ${live.id} is running: the archive holds its events so far, and an import takes only ended runs; export it again once it ends\n`,
      );
    } finally {
      live.close();
    }
  });

  it('Ctrl-C during a long export leaves no file, not even the partial one beside it, and says how far it got', async () => {
    const run = await client.createRun({ name: 'interrupted-export' });
    // Large, so the export is still under way when it is interrupted (the rest cannot all sit in socket buffers).
    await run.artifact('big.bin', randomBytes(32 * 1024 * 1024));
    await run.succeed();
    const proxy = await TcpProxy.start(server.url);
    try {
      const work = join(dir.path, 'interrupted');
      mkdirSync(work, { recursive: true });
      const child = spawnCli(['export', run.id, '-o', 'run.tar', '--server', proxy.url], { cwd: work });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d));
      const exited = once(child, 'exit');
      const partial = join(work, '.run.tar.runtrail-partial');
      await waitUntil(() => existsSync(partial) && statSync(partial).size > 0, { what: 'the export to be under way', intervalMs: 1 });
      proxy.freeze();
      child.kill('SIGINT');
      const [code] = (await exited) as [number | null];
      expect(code).toBe(130);
      // How far, against the server's estimate of the whole (an export has no Content-Length).
      expect(stderr).toMatch(new RegExp(`^runtrail: interrupted after [\\d.]+ (KiB|MiB) of about [\\d.]+ (KiB|MiB) \\(\\d+%\\): nothing was written to ${join(work, 'run.tar').replace(/[.]/g, '\\.')}\n$`));
      // Before: the killed process left .run.tar.runtrail-partial behind.
      expect(readdirSync(work)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});
