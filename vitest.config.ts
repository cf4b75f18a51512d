import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url));

/**
 * Tests import the packages' TypeScript sources directly (no build needed for
 * in-process tests); tests that spawn the `runtrail` binary use the build,
 * which `npm test` makes first.
 */
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@runtrail\/client\/node$/, replacement: src('client/src/node/index.ts') },
      { find: /^@runtrail\/client\/react$/, replacement: src('client/src/react/index.ts') },
      { find: /^@runtrail\/server\/config$/, replacement: src('server/src/config-face.ts') },
      { find: /^@runtrail\/(protocol|store|client|server)$/, replacement: src('$1/src/index.ts') },
      // The shared test kit is a workspace package; resolved here so a checkout needs no reinstall to find it.
      { find: /^@runtrail\/test-support$/, replacement: fileURLToPath(new URL('./test-support/index.ts', import.meta.url)) },
      { find: /^@runtrail\/test-support\/(postgres|process-tree|server|tcp-proxy)$/, replacement: fileURLToPath(new URL('./test-support/$1.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.{ts,tsx}', 'packages/*/test/**/*.test.{ts,tsx}'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests start real servers, child processes and a browser; two cores.
    maxWorkers: 2,
    // The JSON report lets CI print a plain "N passed, N failed" line.
    reporters: ['default', 'json'],
    outputFile: { json: 'node_modules/.cache/runtrail/test-results.json' },
  },
});
