// One-event appends to a run whose input is large (a 1 MiB dataset
// description) next to a run with a small input, on SQLite and PostgreSQL,
// in one process and one run. Every append hands back the whole run; this
// shows what a large input costs its producer. Prints medians of several runs.
//
//   npm run build && node bench/large-input.mjs [--runs 5] [--appends 300] [--input-kib 1024]
//
// PostgreSQL: RUNTRAIL_TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test;
// the bench makes its own schema and drops it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PgRunStore, SqliteRunStore } from '../packages/store/dist/index.js';
import { machine, median, fmt } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    appends: { type: 'string', default: '300' },
    'input-kib': { type: 'string', default: '1024' },
  },
});
const runs = Number(args.runs);
const appends = Number(args.appends);
const url = process.env.RUNTRAIL_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

// Rows of a dataset, as an eval pipeline would pass them: ~100 bytes each.
const rowsFor = (kib) => Array.from({ length: Math.round((kib * 1024) / 103) }, (_, i) => ({ i, prompt: 'x'.repeat(80) }));
const inputs = { small: { dataset: 'gsm8k', limit: 100 }, large: { rows: rowsFor(Number(args['input-kib'])) } };

/** Appends per second to a run with this input. */
async function appendRate(store, id, input) {
  await store.createRun({ id, name: id, now: 1, leaseTtlMs: 600_000, input });
  const append = () => store.append(id, [{ type: 'counter', data: { name: 'done', delta: 1 } }], { now: 2 });
  for (let i = 0; i < 20; i++) await append(); // warm
  const started = performance.now();
  for (let i = 0; i < appends; i++) await append();
  return appends / ((performance.now() - started) / 1000);
}

const stores = {
  sqlite: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtrail-bench-input-'));
    const store = new SqliteRunStore({ filename: join(dir, 'runtrail.db') });
    return { store, drop: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
  },
  postgres: async () => {
    const schema = `rt_bench_input_${process.pid}`;
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    const store = await PgRunStore.open({ connectionString: url, schema, poolSize: 4 });
    return {
      store,
      drop: async () => {
        await store.close();
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        await admin.end();
      },
    };
  },
};

const results = {};
for (let run = 0; run < runs; run++) {
  for (const [storeName, open] of Object.entries(stores)) {
    for (const [inputName, input] of Object.entries(inputs)) {
      const { store, drop } = await open();
      try {
        const rate = await appendRate(store, `${inputName}-${run}`, input);
        (results[`${storeName} ${inputName}`] ??= []).push(rate);
      } finally {
        await drop();
      }
    }
  }
  process.stderr.write(`run ${run + 1}/${runs} done\n`);
}

const inputBytes = JSON.stringify(inputs.large).length;
console.log(`one-event appends to one run, ${appends} per run after 20 to warm up; median of ${runs} runs; ${machine()}`);
console.log(`large input: ${fmt(inputBytes)} bytes of JSON; small: ${JSON.stringify(inputs.small).length} bytes\n`);
console.log('| store | small input | large input | large / small |');
console.log('|---|---|---|---|');
for (const storeName of Object.keys(stores)) {
  const small = median(results[`${storeName} small`]);
  const large = median(results[`${storeName} large`]);
  console.log(`| ${storeName} | ${fmt(Math.round(small))} appends/s | ${fmt(Math.round(large))} appends/s | ${(large / small).toFixed(2)} |`);
}
