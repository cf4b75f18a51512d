// Builds the data of a team a year into using runtrail, through the store API
// (the same appends a server makes): 50,000 runs over the past year, most
// with labels, some families of 500 children, and one LLM eval of 1,000,000
// events (calls, a metric every step, logs, progress). Used by
// bench/scale.mjs; on its own:
//
//   npm run build && node bench/scale-data.mjs --dir /tmp/rt-scale [--runs 50000] [--big 1000000]
//   node bench/scale-data.mjs --postgres postgres://postgres@127.0.0.1:5432/test --schema rt_scale
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteRunStore, PgRunStore } from '../packages/store/dist/index.js';

const DAY = 86_400_000;
const NAMES = ['llm-eval', 'autotune', 'batch-generate', 'media-pipeline', 'nightly-eval', 'embed-corpus', 'fine-tune', 'regression-suite'];
const MODELS = ['gpt-4o', 'claude-3', 'llama-3-70b', 'mistral-large'];
const TEAMS = ['search', 'ranking', 'vision', 'speech', 'platform'];

/** A UUIDv7 for time `ms`: ids sort by creation time, as the server's do. */
export function idAt(ms, n) {
  const ts = ms.toString(16).padStart(12, '0');
  const rand = (k) => Array.from({ length: k }, () => Math.floor(Math.random() * 16).toString(16)).join('');
  return `${ts.slice(0, 8)}-${ts.slice(8)}-7${(n % 4096).toString(16).padStart(3, '0')}-${(8 + (n % 4)).toString(16)}${rand(3)}-${rand(12)}`;
}

/** The events of step `i` of the big eval: a call, its result, a metric, a log line and progress. */
function stepEvents(i, total) {
  const callId = `c${i}`;
  return [
    { type: 'call.started', data: { callId, label: `Evaluating doc_${i} with gpt-4o` } },
    { type: 'call.succeeded', data: { callId, tokens: 400 + (i % 300) } },
    { type: 'metric', data: { name: 'accuracy', value: 0.7 + 0.2 * Math.sin(i / 5000), step: i } },
    { type: 'log', data: { level: 'info', message: `doc_${i}: score ${(i % 100) / 100} (${400 + (i % 300)} tokens)` } },
    { type: 'progress', data: { done: i + 1, total } },
  ];
}

export async function buildScaleData(store, { runs = 50_000, families = 20, familySize = 500, bigEvents = 1_000_000, now = Date.now(), log = () => {} } = {}) {
  const lease = { leaseTtlMs: 30_000 };
  const yearAgo = now - 365 * DAY;
  const childRuns = families * familySize;
  const topLevel = runs - childRuns - 1;
  const step = (365 * DAY) / (topLevel + families);
  let n = 0;
  let parentsLeft = families;
  const parentEvery = Math.floor(topLevel / families);
  const started = Date.now();
  for (let i = 0; i < topLevel + families; i++) {
    const at = Math.floor(yearAgo + i * step);
    const name = NAMES[i % NAMES.length];
    const isParent = parentsLeft > 0 && i % parentEvery === parentEvery - 1;
    const labels = i % 5 === 4 ? undefined : { team: TEAMS[i % TEAMS.length], model: MODELS[i % MODELS.length], dataset: `ds-${i % 40}` };
    const { run } = await store.createRun({ id: idAt(at, n++), name: isParent ? 'autotune-sweep' : name, now: at, labels, ...lease });
    const status = i % 23 === 0 ? 'failed' : i % 41 === 0 ? 'cancelled' : 'succeeded';
    await store.append(run.id, [{ type: 'run.started', data: {} }, { type: 'progress', data: { done: 10, total: 10 } }], { now: at + 1000 });
    if (isParent) {
      parentsLeft--;
      for (let c = 0; c < familySize; c++) {
        const cat = at + 2000 + c * 10;
        const child = await store.createRun({ id: idAt(cat, n++), name: 'autotune-trial', parentId: run.id, now: cat, labels: { lr: String(c % 10), sweep: run.id.slice(0, 8) }, ...lease });
        await store.append(child.run.id, [{ type: 'metric', data: { name: 'loss', value: 1 / (c + 1), step: c } }], { now: cat + 5 });
        await store.finish(child.run.id, 'succeeded', cat + 8);
      }
    }
    await store.finish(run.id, status, at + 60_000);
    if (i % 5000 === 0) log(`runs: ${i} top-level, ${n} in all, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  const bigAt = now - DAY;
  const { run: big } = await store.createRun({ id: idAt(bigAt, n++), name: 'llm-eval-1m', now: bigAt, labels: { team: 'search', model: 'gpt-4o', dataset: 'full' }, ...lease });
  const steps = Math.ceil(bigEvents / 5);
  const batch = [];
  for (let i = 0; i < steps; i++) {
    batch.push(...stepEvents(i, steps));
    if (batch.length >= 1000 || i === steps - 1) {
      await store.append(big.id, batch.splice(0), { now: bigAt + i * 300 });
      if (i % 50_000 === 0) log(`big run: ${i * 5} events, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  }
  await store.finish(big.id, 'succeeded', bigAt + steps * 300);
  log(`done: ${n} runs, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return { bigRunId: big.id, runs: n };
}

/** `finish` as the server does it: the terminal event, appended. */
function withFinish(store) {
  store.finish = (runId, status, now) =>
    store.append(runId, [{ type: `run.${status}`, data: status === 'failed' ? { error: { message: 'ValueError: bad input', kind: 'error' } } : {} }], { now });
  return store;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values: args } = parseArgs({
    options: {
      dir: { type: 'string' },
      postgres: { type: 'string' },
      schema: { type: 'string', default: 'rt_scale' },
      runs: { type: 'string', default: '50000' },
      big: { type: 'string', default: '1000000' },
    },
  });
  let store;
  if (args.postgres) store = await PgRunStore.open({ connectionString: args.postgres, schema: args.schema });
  else {
    mkdirSync(args.dir, { recursive: true });
    store = new SqliteRunStore({ filename: join(args.dir, 'runtrail.db') });
  }
  const result = await buildScaleData(withFinish(store), { runs: Number(args.runs), bigEvents: Number(args.big), log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
  await store.close();
}

export { withFinish };
