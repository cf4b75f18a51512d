import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir } from '@runtrail/test-support';
import { runtrail } from './harness.js';

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

    // put needs a running run.
    const live = await client.createRun({ name: 'manual' });
    const notes = join(dir.path, 'notes.md');
    writeFileSync(notes, '# notes\n');
    const put = await runtrail(['artifacts', 'put', live.id, notes, '--metadata', '{"by":"cli"}', '--server', server.url]);
    expect(put.code, put.stderr).toBe(0);
    expect(await client.listArtifacts(live.id)).toMatchObject([{ ordinal: 1, name: 'notes.md', contentType: 'text/markdown; charset=utf-8', metadata: { by: 'cli' } }]);
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
      const imported = await runtrail(['import', file, '--server', other.url]);
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toContain(`imported run ${runId}`);
      expect(await new RuntrailClient({ url: other.url }).listArtifacts(runId)).toEqual(stored);
      const again = await runtrail(['import', file, '--server', other.url]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/run_already_exists/);
    } finally {
      await other.close();
    }
  });
});
