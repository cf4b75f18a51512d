import { existsSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '@runtrail/test-support';
import { makeDirectory } from './make-directory.js';

const dirs: Array<{ remove(): void }> = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove();
});
function scratch(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir.path;
}

describe('makeDirectory', () => {
  it('makes every missing level, and is content with a directory that is there', () => {
    const root = scratch();
    const deep = join(root, 'a', 'b', 'c');
    makeDirectory(deep);
    expect(statSync(deep).isDirectory()).toBe(true);
    makeDirectory(deep);
    makeDirectory(root);
  });

  // Node's mkdirSync(path, { recursive: true }) never returns for these two
  // (a core spinning on ENOENT, EEXIST, ENOENT, ...): the test would time out.
  it('fails at once, naming the parent, under /proc, where the kernel answers ENOENT for ever', () => {
    expect(() => makeDirectory('/proc/runtrail-test-nope/data')).toThrow(/cannot create the directory \/proc\/runtrail-test-nope: its parent \/proc exists but cannot hold it/);
    expect(existsSync('/proc/runtrail-test-nope')).toBe(false);
  });

  it('fails at once below a dangling symbolic link, and when a file is in the way', () => {
    const root = scratch();
    symlinkSync(join(root, 'gone'), join(root, 'dangling'));
    expect(() => makeDirectory(join(root, 'dangling', 'data'))).toThrow(/dangling: it is a symbolic link to something that does not exist/);
    writeFileSync(join(root, 'file'), 'x');
    expect(() => makeDirectory(join(root, 'file'))).toThrow(/file: a file of that name is in the way/);
    expect(() => makeDirectory(join(root, 'file', 'data'))).toThrow(/ENOTDIR/);
  });
});
