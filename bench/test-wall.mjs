// Wall time of `npm test` for two revisions, interleaved (A, B, A, B, ...)
// so that both see the same machine, with the load average before each run.
//
//   node bench/test-wall.mjs <revA> <revB> [rounds=1]
//
// Each revision is exported (git archive) into a folder of its own under the
// system temp dir, with a copy of this checkout's node_modules (the
// workspace links in it are relative, so they point into that folder), and
// built once before the timed runs, so a run times what `npm test` does on a
// built tree. Prints one line per run and the medians; nothing is written
// into this checkout.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const [revA, revB, roundsArg = '1'] = process.argv.slice(2);
if (!revA || !revB || !/^[1-9]\d*$/.test(roundsArg)) {
  console.error('usage: node bench/test-wall.mjs <revA> <revB> [rounds (a whole number >= 1), default 1]');
  process.exit(2);
}

function checkout(rev) {
  const sha = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: root, encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), `runtrail-test-wall-${sha.slice(0, 8)}-`));
  // mkdtemp makes it 0700; the read-only database test runs a server as nobody from this tree.
  chmodSync(dir, 0o755);
  execFileSync('sh', ['-c', `git archive ${sha} | tar -x -C "${dir}"`], { cwd: root });
  for (const modules of ['node_modules', 'packages/server/node_modules']) {
    if (existsSync(join(root, modules))) cpSync(join(root, modules), join(dir, modules), { recursive: true, verbatimSymlinks: true });
  }
  // The JSON report of the checkout's own runs stays out of the copy.
  rmSync(join(dir, 'node_modules/.cache/runtrail'), { recursive: true, force: true });
  const built = spawnSync('npm', ['run', 'build'], { cwd: dir, stdio: 'ignore' });
  if (built.status !== 0) throw new Error(`npm run build failed in ${dir} (${rev})`);
  return { rev, sha, dir };
}

function timeTests(tree) {
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  const started = process.hrtime.bigint();
  const run = spawnSync('npm', ['test'], { cwd: tree.dir, stdio: 'ignore' });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`${tree.rev} (${tree.sha.slice(0, 8)}): npm test ${seconds.toFixed(1)} s, exit ${run.status}, load before ${load}, at ${new Date().toISOString()}`);
  return seconds;
}

const trees = [checkout(revA), checkout(revB)];
const times = new Map(trees.map((t) => [t, []]));
try {
  for (let round = 0; round < Number(roundsArg); round++) for (const tree of trees) times.get(tree).push(timeTests(tree));
} finally {
  for (const tree of trees) rmSync(tree.dir, { recursive: true, force: true });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [tree, xs] of times) console.log(`median ${tree.rev}: ${median(xs).toFixed(1)} s over ${xs.length} run(s)`);
