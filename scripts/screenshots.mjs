#!/usr/bin/env node
// Regenerates docs/screenshots/runs.png and run.png: builds everything, then
// runs the dashboard's end-to-end test (real server, real Chromium) with
// RUNTRAIL_SCREENSHOTS=1, which makes it save what it shows.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(command, args, env = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run('npm', ['run', 'build']);
run('npx', ['vitest', 'run', 'packages/web/test/e2e/dashboard.e2e.test.ts'], { RUNTRAIL_SCREENSHOTS: '1' });
console.log('wrote docs/screenshots/runs.png and docs/screenshots/run.png');
