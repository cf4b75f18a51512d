// What watching a busy run costs the browser: the run page open in Debian's Chromium (headless,
// software rendering) for the whole of a demo-pipeline run, and how much of that time the page's
// main thread was busy (scripts, style, layout, paint). A page that is busy all the time answers
// clicks late and, on a shared machine, starves everything else.
//
//   node bench/dashboard-cpu.mjs [--runs 3] [--docs 250] [--concurrency 6] [--latency 150]
//        [--cli /path/to/packages/cli/dist/main.js,/path/to/another/main.js]  (interleaved, A B A B ...)
//
// Each variant serves its own build of the dashboard (the cli's tree: packages/web/dist). The
// workload is the dashboard e2e test's: {docs: 250, latencyMs: 150, concurrency: 6, failureRate:
// 0.15}, 500 calls and about 2,700 events in about 15 s. Many calls in flight at once, each for
// seconds (--concurrency 256 --latency 5000), is the In flight list's load: a row per call, its
// elapsed time ticking every second.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { machine, median } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    docs: { type: 'string', default: '250' },
    concurrency: { type: 'string', default: '6' },
    latency: { type: 'string', default: '150' },
    cli: { type: 'string', default: fileURLToPath(new URL('../packages/cli/dist/main.js', import.meta.url)) },
  },
});
const variants = args.cli.split(',');
const runs = Number(args.runs);

async function startServer(cli, dataDir) {
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cli} did not start in 20 s:\n${out}`)), 20_000);
    child.stdout.on('data', () => {
      const m = /runtrail serving on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`${cli} exited (${code}):\n${out}`)));
  });
  return { url, stop: () => new Promise((resolve) => (child.once('exit', resolve), child.kill())) };
}

async function oneRun(browser, cli) {
  const dataDir = mkdtempSync(join(tmpdir(), 'runtrail-bench-dashboard-'));
  const server = await startServer(cli, dataDir);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');
    await cdp.send('Network.enable');
    let messages = 0;
    cdp.on('Network.webSocketFrameReceived', () => messages++);
    const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
    const input = { docs: Number(args.docs), latencyMs: Number(args.latency), concurrency: Number(args.concurrency), failureRate: 0.15 };
    const res = await fetch(`${server.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'demo-pipeline', execute: true, input }),
    });
    if (res.status !== 201) throw new Error(`starting the demo: ${res.status} ${await res.text()}`);
    const run = await res.json();
    const before = await metrics();
    const started = performance.now();
    await page.goto(`${server.url}/runs/${run.id}`);
    let ended;
    for (;;) {
      ended = await (await fetch(`${server.url}/api/v1/runs/${run.id}`)).json();
      if (!['queued', 'running'].includes(ended.status)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    // The page has shown the end once its status says so.
    await page.locator('.run-head [data-testid=status]', { hasText: ended.status }).waitFor({ timeout: 30_000 });
    const wall = (performance.now() - started) / 1000;
    const after = await metrics();
    const spent = (name) => after[name] - before[name];
    return {
      wall,
      events: ended.seq,
      messages,
      busy: spent('TaskDuration') / wall,
      script: spent('ScriptDuration'),
      layout: spent('LayoutDuration') + spent('RecalcStyleDuration'),
      task: spent('TaskDuration'),
    };
  } finally {
    await page.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const results = new Map(variants.map((v) => [v, []]));
const loads = [];
try {
  for (let r = 0; r < runs; r++) {
    for (const cli of variants) {
      loads.push(loadavg()[0]);
      const result = await oneRun(browser, cli);
      results.get(cli).push(result);
      process.stderr.write(
        `run ${r + 1}/${runs} ${cli}: main thread busy ${(result.busy * 100).toFixed(0)}% of ${result.wall.toFixed(1)} s, ` +
          `${result.events} events in ${result.messages} messages\n`,
      );
    }
  }
} finally {
  await browser.close();
}

console.log(`\n${machine()}; load average (1 min) at each run's start: ${loads.map((l) => l.toFixed(1)).join(', ')}`);
console.log(`demo-pipeline, ${args.docs} docs (x2 models), latency ${args.latency} ms, concurrency ${args.concurrency}, failure rate 0.15; median of ${runs} runs\n`);
console.log('| dashboard build | main thread busy | busy s | of which script s | style+layout s | run s | events | WebSocket messages |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [cli, list] of results) {
  const m = (key) => median(list.map((x) => x[key]));
  console.log(
    `| ${cli} | ${(m('busy') * 100).toFixed(0)}% | ${m('task').toFixed(1)} | ${m('script').toFixed(1)} | ${m('layout').toFixed(1)} | ${m('wall').toFixed(1)} | ${m('events')} | ${m('messages')} |`,
  );
}
