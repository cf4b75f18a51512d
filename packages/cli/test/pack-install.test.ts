import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '@runtrail/test-support';
import { runtrail, serve } from './harness.js';

/**
 * The packages as a user gets them: `npm pack` of each, installed from the
 * tarballs into a fresh project outside the repository, then `runtrail
 * serve`, a producer and a watcher run from there. Dependencies come from
 * the local npm cache (--prefer-offline). Install scripts are skipped and
 * better-sqlite3's native addon is copied from the repository's install
 * (same version, same Node): compiling it again takes minutes on two cores
 * and proves nothing about our packages.
 */
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const WORKSPACES = ['@runtrail/protocol', '@runtrail/store', '@runtrail/client', '@runtrail/server', '@runtrail/cli', '@runtrail/web'];

let packs: ReturnType<typeof tempDir>;
let app: ReturnType<typeof tempDir>;

const PRODUCER = `
import { RuntrailClient, watchRun } from '@runtrail/client';
import WebSocket from 'ws';
const url = process.argv[2];
const rt = new RuntrailClient({ url });
const run = await rt.createRun({ name: 'packed', labels: { from: 'tarball' } });
const watch = watchRun(run.id, { url, WebSocket });
await run.withPhase('work', async () => {
  for (let i = 1; i <= 5; i++) {
    await run.call('item ' + i, async () => i);
    run.progress(i, 5);
  }
});
await run.succeed({ ok: true });
const final = await watch.done;
console.log(JSON.stringify({ id: run.id, status: final.run.status, ok: final.snapshot.counters.ok, done: final.snapshot.progress.done }));
`;

const TYPED = `
import { createServer, type RuntrailServer } from '@runtrail/server';
import { RuntrailClient, type RunHandle } from '@runtrail/client';
import { useRun } from '@runtrail/client/react';
import { foldEvents, type Snapshot } from '@runtrail/protocol';
export async function main(): Promise<RuntrailServer> {
  const rt = await createServer({ port: 0, dataDir: './data' });
  rt.define<{ n: number }>('double', async (ctx) => ctx.input.n * 2);
  const handle: RunHandle = await new RuntrailClient({ url: 'http://127.0.0.1:1' }).createRun({ name: 'x' });
  const s: Snapshot | undefined = undefined;
  void handle; void s; void foldEvents; void useRun;
  return rt;
}
`;

beforeAll(() => {
  packs = tempDir('runtrail-packs-');
  app = tempDir('runtrail-user-app-');
  execFileSync('npm', ['pack', '--pack-destination', packs.path, ...WORKSPACES.flatMap((w) => ['-w', w])], {
    cwd: repo,
    stdio: 'ignore',
  });
  writeFileSync(join(app.path, 'package.json'), JSON.stringify({ name: 'user-app', private: true, type: 'module' }));
  const tarballs = readdirSync(packs.path).map((f) => join(packs.path, f));
  execFileSync('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', ...tarballs], {
    cwd: app.path,
    stdio: 'ignore',
  });
  const version = (dir: string) =>
    (JSON.parse(readFileSync(join(dir, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }).version;
  expect(version(app.path)).toBe(version(repo));
  cpSync(join(repo, 'node_modules/better-sqlite3/build'), join(app.path, 'node_modules/better-sqlite3/build'), { recursive: true });
  writeFileSync(join(app.path, 'producer.mjs'), PRODUCER);
  writeFileSync(join(app.path, 'typed.ts'), TYPED);
}, 300_000);

afterAll(() => {
  app?.remove();
  packs?.remove();
});

describe('the packed packages installed in a fresh project', () => {
  it('ship only their build, with exports and type declarations that resolve', () => {
    for (const name of ['protocol', 'store', 'client', 'server', 'cli']) {
      const dir = join(app.path, 'node_modules/@runtrail', name);
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports?: Record<string, { types: string; default: string }> };
      for (const entry of Object.values(pkg.exports ?? {})) {
        expect(() => readFileSync(join(dir, entry.types)), `${name} ${entry.types}`).not.toThrow();
        expect(() => readFileSync(join(dir, entry.default)), `${name} ${entry.default}`).not.toThrow();
      }
      expect(readdirSync(dir).filter((f) => f === 'src' || f === 'test' || f === 'tsconfig.json')).toEqual([]);
      // Without src, a source map that only pointed at ../src made bundlers warn and debuggers show nothing.
      const map = JSON.parse(readFileSync(join(dir, name === 'cli' ? 'dist/main.js.map' : 'dist/index.js.map'), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      expect(map.sourcesContent?.length, `${name} source map`).toBe(map.sources.length);
      expect(map.sourcesContent!.every((text) => text.length > 0)).toBe(true);
      expect((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { engines?: { node?: string } }).engines?.node, name).toBe('>=20.19');
    }
    const tsc = spawnSync(
      process.execPath,
      [join(repo, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
        '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--typeRoots', join(repo, 'node_modules/@types'), 'typed.ts'],
      { cwd: app.path, encoding: 'utf8' },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('runs `runtrail serve` with the dashboard and API docs, a producer and a watcher from there', async () => {
    const bin = join(app.path, 'node_modules/.bin/runtrail');
    const server = await serve(['--port', '0', '--data-dir', join(app.path, 'data'), '--log-level', 'warn'], { bin, cwd: app.path });
    try {
      const producer = spawnSync(process.execPath, ['producer.mjs', server.url], { cwd: app.path, encoding: 'utf8' });
      expect(producer.stderr).toBe('');
      const result = JSON.parse(producer.stdout) as { id: string; status: string; ok: number; done: number };
      expect(result).toMatchObject({ status: 'succeeded', ok: 5, done: 5 });

      const tail = await runtrail(['tail', result.id, '--server', server.url], { bin, cwd: app.path });
      expect(tail.code).toBe(0);
      expect(tail.stdout).toContain(`run ${result.id} ended succeeded`);

      const dashboard = await fetch(server.url);
      expect(dashboard.status).toBe(200);
      expect(await dashboard.text()).toContain('<div id="root">');
      expect((await fetch(`${server.url}/api/docs`)).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
