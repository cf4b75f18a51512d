import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built store package, as worker threads and child processes load it. */
export const builtStoreUrl = new URL('../dist/index.js', import.meta.url).href;

/**
 * The concurrency tests open the store in worker threads and child
 * processes, which load the BUILT packages (they cannot run TypeScript). A
 * build older than its sources would test old code (an old store, or an old
 * reducer whose fold differs from the one this thread runs), so say so
 * instead of testing stale code.
 */
export function requireFreshBuild(): void {
  for (const pkg of ['protocol', 'store']) {
    const root = fileURLToPath(new URL(`../../${pkg}/`, import.meta.url));
    // The same test tsc -b makes: its build info must be newer than every source.
    const info = join(root, 'tsconfig.tsbuildinfo');
    const builtAt = existsSync(info) && existsSync(join(root, 'dist', 'index.js')) ? statSync(info).mtimeMs : 0;
    for (const file of readdirSync(join(root, 'src'), { recursive: true }) as string[]) {
      if (!file.endsWith('.ts') || file.endsWith('.test.ts') || file.endsWith('.test-kit.ts') || file === 'conformance.ts') continue;
      if (statSync(join(root, 'src', file)).mtimeMs > builtAt) {
        throw new Error(`packages/${pkg} was not built since src/${file} changed; run \`npx tsc -b\` (npm test does) first`);
      }
    }
  }
}
