import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readFileSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '@runtrail/test-support';

/**
 * The README's first command on a fresh clone: `npm ci` (what `npm install`
 * does from the lock file) must print no EBADENGINE on Node 20, and must
 * leave a `runtrail` that `npx runtrail` runs locally, never a package of
 * that name from the registry.
 *
 * The clone is a copy of the working tree's tracked files (what a
 * `git clone` checks out, plus any uncommitted edits to them). It is made
 * with `git ls-files`, which only reads the index: `git stash create` or
 * anything else that takes `index.lock` failed intermittently under the
 * full suite. Install scripts are skipped: they would compile
 * better-sqlite3 from source (minutes on two cores) and run our `prepare`,
 * which is `npm run build`, the build `npm test` has just proved; the
 * clone gets that build's output instead.
 */
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = ['protocol', 'store', 'client', 'server', 'cli', 'web'];

let clone: ReturnType<typeof tempDir>;
let install: { status: number | null; output: string };

const npm = (args: string[]) => {
  const result = spawnSync('npm', args, { cwd: clone.path, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
};

beforeAll(() => {
  clone = tempDir('runtrail-fresh-clone-');
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: repo, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const file of tracked) {
    // A tracked file deleted in the working tree is not part of what a clone of it would hold.
    if (existsSync(join(repo, file))) cpSync(join(repo, file), join(clone.path, file));
  }
  install = npm(['ci', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts']);
}, 240_000);

afterAll(() => clone.remove());

describe('a fresh clone', () => {
  it('installs with npm ci without an EBADENGINE warning on this Node', () => {
    expect(install.status, install.output).toBe(0);
    expect(install.output).not.toContain('EBADENGINE');
  });

  it('builds on install (prepare) and links runtrail at install time, before anything is built', () => {
    const pkg = JSON.parse(readFileSync(join(clone.path, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prepare).toBe(pkg.scripts.build);
    expect(readlinkSync(join(clone.path, 'node_modules/.bin/runtrail'))).toBe('../@runtrail/cli/bin/runtrail.js');
    const unbuilt = npm(['exec', '--offline', '--', 'runtrail', '--help']);
    expect(unbuilt.status).not.toBe(0);
    expect(unbuilt.output).toMatch(/runtrail: the CLI is not built .*; run `npm run build`/);
  });

  it('runs the local CLI with npx runtrail --help and --version once built', () => {
    for (const name of PACKAGES) {
      const dist = join(repo, 'packages', name, 'dist');
      if (existsSync(dist)) cpSync(dist, join(clone.path, 'packages', name, 'dist'), { recursive: true });
    }
    const help = spawnSync('npx', ['--offline', 'runtrail', '--help'], { cwd: clone.path, encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: runtrail \[options\] \[command\]/);
    for (const command of ['serve', 'config', 'exec', 'tail']) expect(help.stdout).toContain(command);
    const version = spawnSync('npx', ['--offline', 'runtrail', '--version'], { cwd: clone.path, encoding: 'utf8' });
    const { version: expected } = JSON.parse(readFileSync(join(repo, 'packages/cli/package.json'), 'utf8')) as { version: string };
    expect(version.stdout.trim()).toBe(expected);
  });
});
