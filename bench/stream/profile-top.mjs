// Summarize a V8 .cpuprofile (from `run.mjs --cpu-prof`): the functions with
// the most self time and the most inclusive time, with file:line.
//   node bench/stream/profile-top.mjs bench/stream/profiles/<file>.cpuprofile [rows] [under]
// With `under` (a function name), only samples with that function on the stack count.
import { readFileSync } from 'node:fs';

const [file, rowsArg, under] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-top.mjs <file.cpuprofile> [rows]');
const rows = Number(rowsArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const hasOnStack = (id) => {
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) if (byId.get(cur).callFrame.functionName === under) return true;
  return false;
};

// Self time per node from the sample timeline.
const self = new Map();
for (let k = 0; k < profile.samples.length; k++) {
  const dt = profile.timeDeltas[k + 1] ?? 0;
  if (under && !hasOnStack(profile.samples[k])) continue;
  self.set(profile.samples[k], (self.get(profile.samples[k]) ?? 0) + dt);
}
const total = [...self.values()].reduce((a, b) => a + b, 0);

const key = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^file:\/\//, '').replace(/.*\/(packages|node_modules)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
};

const selfBy = new Map();
const inclBy = new Map();
for (const [id, t] of self) {
  const n = byId.get(id);
  selfBy.set(key(n), (selfBy.get(key(n)) ?? 0) + t);
  // Inclusive: charge each distinct function on the stack once.
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    inclBy.set(k, (inclBy.get(k) ?? 0) + t);
  }
}

const show = (title, map) => {
  console.log(`\n${title} (of ${(total / 1000).toFixed(0)} ms sampled)`);
  for (const [k, t] of [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`);
  }
};
show('self time', selfBy);
show('inclusive time', inclBy);
