import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const pkg = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));

/**
 * The dashboard bundles the SDK from its sources (like the root vitest
 * config), so it always uses exactly the client every user gets, without a
 * separate build step of the client package.
 */
export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: [
      { find: /^@runtrail\/client\/react$/, replacement: pkg('client/src/react/index.ts') },
      { find: /^@runtrail\/client$/, replacement: pkg('client/src/index.ts') },
      { find: /^@runtrail\/protocol$/, replacement: pkg('protocol/src/index.ts') },
    ],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    // Libraries change less often than the dashboard: separate chunks stay cached across releases.
    rolldownOptions: {
      // The SDK reads file artifact sources with node:fs, imported only when one is given
      // (never by the dashboard): left as it is rather than stubbed with a build warning.
      external: ['node:fs/promises'],
      output: {
        codeSplitting: {
          groups: [
            { name: 'react', test: /node_modules[\\/](react|react-dom|scheduler)[\\/]/ },
            { name: 'vendor', test: /node_modules[\\/]/ },
          ],
        },
      },
    },
  },
  server: {
    // `npm run dev -w @runtrail/web` next to `runtrail serve` on its default port.
    proxy: { '/api': { target: 'http://127.0.0.1:4310', ws: true } },
  },
});
