#!/usr/bin/env node
// Regenerates docs/screenshots/*.png: builds everything, then runs the
// dashboard's scene tests (real server, real Chromium, `runtrail exec` of
// real Python scripts) with RUNTRAIL_SCREENSHOTS=1, which makes them save
// what they show, all from one scene (scene.e2e.test.ts): runs.png and
// runs-phone.png (the runs list at 1280 and 390 px: the failed script, the
// stalled run, the parent with its experiments, a queued run, a crawl of
// unknown total), run.png (a live LLM eval), run-parent.png (an autotune
// parent and its experiments), run-failed.png (a Python traceback),
// run-stalled.png, run-queued.png (a run no live node can start),
// run-artifacts.png (stored artifacts and a linked one), run-phone.png,
// run-parent-phone.png.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(command, args, env = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run('npm', ['run', 'build']);
run('npx', ['vitest', 'run', 'packages/web/test/e2e/scene.e2e.test.ts'], { RUNTRAIL_SCREENSHOTS: '1' });
console.log('wrote docs/screenshots/*.png');
