// `npm run build` (also the root `prepare`, so `npm install` leaves a working
// `runtrail`): compile what changed, and rebuild the dashboard only when the
// files it is made from differ from those of the last build, so `npm start`
// on a built tree starts in a second or two instead of ~20 s.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const force = process.argv.includes('--force');

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/** Adds every file under `path` (its path and content) to `hash`, in a stable order. */
function hashTree(hash, path) {
  if (!existsSync(path)) return;
  if (!statSync(path).isDirectory()) {
    hash.update(`${path}\0`).update(readFileSync(path)).update('\0');
    return;
  }
  for (const entry of readdirSync(path).sort()) hashTree(hash, join(path, entry));
}

// tsc -b is incremental: a no-op when nothing changed.
run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b']);

// The dashboard bundles web, client and protocol sources (see packages/web/vite.config.ts).
// The build records the hash of its sources as they were when it STARTED: a file
// edited while it ran (or a checkout that sets older times) makes the next build
// rebuild, where comparing file times took the build for newer than the edit.
const builtFrom = join(root, 'packages/web/dist/.source-hash');
const inputs = [
  'packages/web/src',
  'packages/web/index.html',
  'packages/web/vite.config.ts',
  'packages/web/package.json',
  'packages/client/src',
  'packages/protocol/src',
].map((p) => join(root, p));
const hash = createHash('sha256');
for (const input of inputs) hashTree(hash, input);
const sourceHash = hash.digest('hex');
const stale = force || !existsSync(builtFrom) || readFileSync(builtFrom, 'utf8') !== sourceHash;
if (stale) {
  run('npm', ['run', 'build', '-w', '@runtrail/web']);
  writeFileSync(builtFrom, sourceHash);
} else process.stdout.write('dashboard up to date (packages/web/dist); `npm run build -- --force` rebuilds it\n');

// The API docs page (/api/docs) serves Swagger UI from the server itself, never from a CDN.
const swaggerUi = join(root, 'node_modules/swagger-ui-dist');
const apiDocs = join(root, 'packages/server/dist/api-docs');
mkdirSync(apiDocs, { recursive: true });
for (const file of ['swagger-ui-bundle.js', 'swagger-ui.css', 'LICENSE']) {
  const [from, to] = [join(swaggerUi, file), join(apiDocs, file)];
  // Only when changed: a build while servers run from dist (CI's Python suites beside npm test) rewrites nothing they serve.
  if (!existsSync(to) || !readFileSync(to).equals(readFileSync(from))) copyFileSync(from, to);
}
