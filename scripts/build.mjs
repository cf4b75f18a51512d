// `npm run build` (also the root `prepare`, so `npm install` leaves a working
// `runtrail`): compile what changed, and rebuild the dashboard only when a
// file it is made from is newer than the last build, so `npm start` on a
// built tree starts in a second or two instead of ~20 s.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const force = process.argv.includes('--force');

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = 0;
  for (const entry of readdirSync(path)) max = Math.max(max, newest(join(path, entry)));
  return max;
}

// tsc -b is incremental: a no-op when nothing changed.
run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b']);

// The dashboard bundles web, client and protocol sources (see packages/web/vite.config.ts).
const built = join(root, 'packages/web/dist/index.html');
const inputs = [
  'packages/web/src',
  'packages/web/index.html',
  'packages/web/vite.config.ts',
  'packages/web/package.json',
  'packages/client/src',
  'packages/protocol/src',
].map((p) => join(root, p));
const stale = force || !existsSync(built) || inputs.some((p) => existsSync(p) && newest(p) > statSync(built).mtimeMs);
if (stale) run('npm', ['run', 'build', '-w', '@runtrail/web']);
else process.stdout.write('dashboard up to date (packages/web/dist); `npm run build -- --force` rebuilds it\n');

// The API docs page (/api/docs) serves Swagger UI from the server itself, never from a CDN.
const swaggerUi = join(root, 'node_modules/swagger-ui-dist');
const apiDocs = join(root, 'packages/server/dist/api-docs');
mkdirSync(apiDocs, { recursive: true });
for (const file of ['swagger-ui-bundle.js', 'swagger-ui.css', 'LICENSE']) copyFileSync(join(swaggerUi, file), join(apiDocs, file));
