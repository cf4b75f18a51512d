import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { runtrail } from './harness.js';

/**
 * A whole family (an autotune parent, its trials, a trial's own run) moved
 * with `runtrail export RUN --family` and `runtrail import FILE`, from a
 * server on SQLite to one on PostgreSQL, as a user runs them.
 */
let dir: ReturnType<typeof tempDir>;
let sqlite: RunningServer;
let postgres: RunningServer;
let schema: string;

beforeAll(async () => {
  dir = tempDir('runtrail-cli-family-');
  schema = await freshSchema();
  sqlite = await startServer({ port: 0, dataDir: join(dir.path, 'sqlite'), logLevel: 'silent' });
  postgres = await startServer({
    port: 0,
    dataDir: join(dir.path, 'pg'),
    artifactsDir: join(dir.path, 'pg-content'),
    databaseUrl: TEST_DATABASE_URL,
    databaseSchema: schema,
    logLevel: 'silent',
  });
});
afterAll(async () => {
  await sqlite?.close();
  await postgres?.close();
  await dropSchema(schema);
  dir.remove();
});

async function autotune(client: RuntrailClient) {
  const parent = await client.createRun({ name: 'autotune', labels: { sweep: 'lr' } });
  const trials = [];
  for (let i = 0; i < 3; i++) {
    const trial = await client.createRun({ name: `trial-${i}`, parentId: parent.id, input: { lr: 10 ** -i } });
    trial.progress(1, 1);
    await trial.artifact('metrics.json', JSON.stringify({ loss: 1 / (i + 1) }));
    trials.push(trial);
  }
  const evaluation = await client.createRun({ name: 'eval', parentId: trials[1]!.id });
  await evaluation.artifact('report.txt', 'accuracy 0.93');
  return { parent, trials, evaluation, ids: [parent.id, ...trials.map((t) => t.id), evaluation.id] };
}

describe('runtrail export --family and runtrail import', () => {
  it('a parent, its 3 children and a grandchild, with their artifacts, go from SQLite to PostgreSQL in one archive and come back identical; a second import succeeds saying it changed nothing', async () => {
    const source = new RuntrailClient({ url: sqlite.url });
    const { parent, trials, evaluation, ids } = await autotune(source);
    await evaluation.succeed({ accuracy: 0.93 });
    for (const trial of trials) await trial.succeed();
    await parent.artifact('best.json', JSON.stringify({ trial: 1 }));
    await parent.succeed({ best: trials[1]!.id });

    const file = join(dir.path, 'family.tar');
    const exported = await runtrail(['export', parent.id, '--family', '-o', file, '--progress', '--server', sqlite.url]);
    expect(exported.code, exported.stderr).toBe(0);
    // The archive has no Content-Length: the server's estimate of its size gives the line a percentage, 100% once whole.
    expect(exported.stderr).toMatch(new RegExp(`runtrail: exporting run ${parent.id} with 4 runs under it: [\\d.]+ (B|KiB|MiB) \\(100%\\)\n`));
    expect(exported.stderr).toMatch(new RegExp(`runtrail: wrote ${file} \\(5 runs\\)\n$`));

    const imported = await runtrail(['import', file, '--progress', '--server', postgres.url]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toBe(`${parent.id}\n`);
    expect(imported.stderr).toMatch(new RegExp(`runtrail: importing family\\.tar: .* \\(100%\\)\n`));
    expect(imported.stderr).toMatch(new RegExp(`imported run ${parent.id} \\(autotune, succeeded, \\d+ events, 1 artifact\\), with 4 runs under it\n$`));

    const target = new RuntrailClient({ url: postgres.url });
    for (const id of ids) {
      expect(await target.getRun(id)).toEqual(await source.getRun(id));
      expect((await target.readEvents(id)).events).toEqual((await source.readEvents(id)).events);
      const artifacts = await source.listArtifacts(id);
      expect(await target.listArtifacts(id)).toEqual(artifacts);
      for (const a of artifacts) {
        const [was, is] = [await (await source.fetchArtifact(id, a.name)).text(), await (await target.fetchArtifact(id, a.name)).text()];
        expect(is, a.name).toBe(was);
      }
    }
    expect((await target.listRuns({ parentId: trials[1]!.id })).runs.map((r) => r.id)).toEqual([evaluation.id]);

    // Every run of it is there now, as the archive holds it: the import repeated (say, after a lost answer)
    // succeeds and changes nothing. Before: 409 run_already_exists, a failure for what had worked.
    const before = await target.listRuns({ limit: 100 });
    const again = await runtrail(['import', file, '--server', postgres.url]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(`${parent.id}\n`);
    expect(again.stderr).toMatch(new RegExp(`^run ${parent.id} \\(.*\\), with 4 runs under it was here already as the archive holds it; nothing changed\n$`));
    expect(await target.listRuns({ limit: 100 })).toEqual(before);
  });

  it('a family with a run still going is refused by `export --family`, naming that run, and leaves no file', async () => {
    const client = new RuntrailClient({ url: sqlite.url });
    const { parent, trials, evaluation } = await autotune(client);
    for (const trial of trials) await trial.succeed();
    await parent.succeed();
    const file = join(dir.path, 'live-family.tar');
    try {
      const refused = await runtrail(['export', parent.id, '--family', '-o', file, '--server', sqlite.url]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toBe(
        `runtrail: run_not_terminal: run ${evaluation.id} (eval) under run ${parent.id} is running; ` +
          'an import takes a family only once every run in it has ended: export it then\n',
      );
      expect(() => readFileSync(file)).toThrow(/ENOENT/);
    } finally {
      evaluation.close();
    }
  });
});
