import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');
const packages = readdirSync(`${root}packages`);

/**
 * Where a path the README names is: as written from the repository, under
 * `packages/` (the guarantees table's convention), or under one package's
 * `src/` (`leases/cancel-retry-delete.test.ts`, beside a sentence naming the package).
 */
const found = (path: string) =>
  existsSync(root + path) || existsSync(`${root}packages/${path}`) || packages.some((p) => existsSync(`${root}packages/${p}/src/${path}`));

describe('the README', () => {
  it('names as proof only test files that exist, in the "What it guarantees" table', () => {
    const section = readme.slice(readme.indexOf('\n## What it guarantees\n'), readme.indexOf('\n## Architecture\n'));
    const rows = section.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| failure') && !line.startsWith('|---'));
    expect(rows.length).toBeGreaterThanOrEqual(10);
    for (const row of rows) {
      const proof = row.split(' | ').at(-1)!;
      const paths = [...proof.matchAll(/`([^`\s]+\.(?:ts|tsx|mjs))`/g)].map((m) => m[1]!);
      expect(paths.length, `a row with no test named: ${row.slice(0, 60)}`).toBeGreaterThan(0);
      // Paths are under packages/ (the table says so); a benchmark cited beside a test is under bench/.
      for (const path of paths) expect(existsSync(path.startsWith('bench/') ? root + path : `${root}packages/${path}`), path).toBe(true);
    }
  });

  it('names only source, test and script files that exist', () => {
    const named = [
      ...[...readme.matchAll(/`([\w./-]*\/[\w.-]+\.(?:ts|tsx|mjs|js|py))`/g)].map((m) => m[1]!),
      // Commands quoted with their script: `node bench/dashboard-cpu.mjs`, `.ci/run`.
      ...[...readme.matchAll(/(?<![\w./-])((?:bench|scripts|clients|\.ci)\/[\w./-]*[\w-])(?=[`\s,)])/g)].map((m) => m[1]!),
    ];
    expect(named.length).toBeGreaterThan(50);
    expect(named.filter((path) => !found(path))).toEqual([]);
  });

  it('links only to headings it has and to files in the repository', () => {
    // GitHub's anchors: lower case, punctuation dropped, spaces as hyphens.
    const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/ /g, '-');
    const headings = new Set([...readme.replace(/```[^]*?```/g, '').matchAll(/^#{1,6} (.*)$/gm)].map((m) => slug(m[1]!)));
    const anchors = [...readme.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    expect(anchors.length).toBeGreaterThan(10);
    expect(anchors.filter((a) => !headings.has(a))).toEqual([]);
    // Links out of the checkout (`../shared/…`) depend on where it is, so only the repository's own are held here.
    const files = [...readme.matchAll(/\]\((?!https?:|#|\.\.\/)([^)#\s]+)/g)].map((m) => m[1]!);
    expect(files.length).toBeGreaterThan(5);
    expect(files.filter((f) => !existsSync(root + f))).toEqual([]);
  });
});
