import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { HandlersResponse } from '@runtrail/protocol';
import {
  postJson,
  restartingScene,
  repoRoot,
  screenshot,
  textNow,
  waitUntil,
  type ServerProcess,
} from './harness.js';

/**
 * The scene the README's screenshots are taken from (`npm run screenshots`
 * -w @runtrail/web writes them; a plain test run only checks the scene):
 * what a server holds on a real day. An LLM evaluation with 8 calls in
 * flight, an autotune parent with child experiments, `runtrail exec` runs of
 * Python scripts that succeed and fail with a traceback, a stalled run, a
 * cancelled one, a queued one whose handler no node defines, a crawl of no
 * known total, and a report with artifacts, one of them a link.
 */

interface ApiRun {
  id: string;
  status: string;
}

const FAILING_SCRIPT = `
import json, sys, time

def emit(type_, **data):
    print("::runtrail:: " + json.dumps({"type": type_, "data": data}), flush=True)

def load_shard(i):
    if i == 3:
        raise ValueError(f"shard {i}: expected 512 columns, got 511")
    return i

def main():
    emit("phase", name="load", status="started")
    for i in range(8):
        print(f"loading shard {i}", flush=True)
        emit("progress", done=i, total=8, message=f"shard {i}")
        load_shard(i)

main()
`;

const SUCCEEDING_SCRIPT = `
import json, math

def emit(type_, **data):
    print("::runtrail:: " + json.dumps({"type": type_, "data": data}), flush=True)

emit("phase", name="train", status="started")
for step in range(1, 41):
    emit("metric", name="loss", value=round(2.2 * math.exp(-step / 12) + 0.05 * math.sin(step), 4), step=step)
    emit("progress", done=step, total=40)
print("saved model.pt", flush=True)
emit("phase", name="train", status="completed")
`;

describe('the scene behind the README screenshots', () => {
  // The report's object store is named so its link has a Load button, as a deployment that previews them would.
  const scene = restartingScene({
    prefix: 'runtrail-web-scene-',
    node: 'e2e-scene',
    env: { RUNTRAIL_REAPER_INTERVAL_MS: '200', RUNTRAIL_LINK_PREVIEW_HOSTS: 'https://reports.example.com' },
  });
  const dir = scene.dir;
  let server: ServerProcess | null = null;
  let page: Page;
  let errors: string[];
  const ids: Record<string, string> = {};

  const post = <T = ApiRun>(path: string, body: unknown): Promise<T> => postJson<T>(server!.url, path, body);
  const getRun = async (id: string) => (await (await fetch(`${server!.url}/api/v1/runs/${id}`)).json()) as ApiRun;

  /** `runtrail exec` of a Python script against the server; resolves with its exit code. */
  const exec = (name: string, script: string): Promise<number | null> => {
    const file = join(dir.path, name);
    writeFileSync(file, script);
    const child = spawn(process.execPath, [`${repoRoot}packages/cli/dist/main.js`, '--server', server!.url, 'exec', '--name', name, '--quiet', '--', 'python3', name], {
      cwd: dir.path,
      stdio: 'ignore',
    });
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  };

  // The scene's beforeAll runs first. A node that defines nightly-import but runs nothing queues a run of
  // it; the same node back without it serves the rest of the scene, so that run waits for a node that
  // defines it (and says when it will end without one).
  beforeAll(async () => {
    const handlers = join(dir.path, 'handlers.mjs');
    writeFileSync(handlers, "export default { 'nightly-import': async () => {} };\n");
    server = await scene.start({ args: ['--handlers', handlers, '--concurrency', '0'] });
    const queued = await post('/runs', { name: 'nightly-import', execute: true, input: { since: '2026-11-27' } });
    expect(queued.status).toBe('queued');
    ids.queued = queued.id;
    server = await scene.restart();
    ({ page, errors } = await scene.newPage());
  });

  it('holds Python scripts run with `runtrail exec`: one succeeded, one failed with its traceback', async () => {
    expect(await exec('train.py', SUCCEEDING_SCRIPT)).toBe(0);
    expect(await exec('ingest.py', FAILING_SCRIPT)).toBe(1);
    const list = (await (await fetch(`${server!.url}/api/v1/runs`)).json()) as { runs: Array<ApiRun & { name: string }> };
    ids.train = list.runs.find((r) => r.name === 'train.py')!.id;
    ids.ingest = list.runs.find((r) => r.name === 'ingest.py')!.id;
    expect((await getRun(ids.ingest)).status).toBe('failed');

    await page.goto(`${server!.url}/runs/${ids.ingest}`);
    await page.getByTestId('error-kind').waitFor();
    // The title is set by an effect after the page renders.
    await waitUntil(async () => (await page.title()) === 'failed · ingest.py · runtrail', { what: 'the tab to name the run and its status' });
    expect(await page.getByLabel('run progress').getAttribute('class')).toBe('progress progress-failed');
    await screenshot(page, 'run-failed', { fullPage: true });
  });

  it('holds an autotune parent whose experiments are compared in a table, a chart and the timeline', async () => {
    const parent = await post('/runs', { name: 'autotune-lr', input: { trials: 6, metric: 'objective' }, leaseTtlMs: 600_000 });
    ids.parent = parent.id;
    const t0 = Date.now();
    await post(`/runs/${parent.id}/events`, { events: [{ type: 'phase', data: { name: 'search', status: 'started' }, ts: t0 }] });
    const trials = [
      { lr: 0.1, depth: 4, dropout: 0.1, curve: [0.42, 0.55, 0.61, 0.63, 0.64], end: 'succeeded' },
      { lr: 0.03, depth: 6, dropout: 0.2, curve: [0.48, 0.66, 0.74, 0.79, 0.81], end: 'succeeded' },
      { lr: 0.01, depth: 8, dropout: 0.2, curve: [0.51, 0.7, 0.82, 0.88, 0.91], end: 'succeeded' },
      { lr: 0.3, depth: 8, dropout: 0.0, curve: [0.35, 0.22], end: 'failed' },
      { lr: 0.003, depth: 6, dropout: 0.3, curve: [0.4, 0.55, 0.67], end: null },
      { lr: 0.001, depth: 4, dropout: 0.1, curve: [0.3, 0.41], end: null },
    ];
    let best = 0;
    let ended = 0;
    for (const [i, t] of trials.entries()) {
      const child = await post('/runs', {
        name: `experiment-${i + 1}`,
        parentId: parent.id,
        input: { lr: t.lr, depth: t.depth, dropout: t.dropout },
        leaseTtlMs: 600_000,
      });
      await post(`/runs/${child.id}/events`, {
        events: [
          ...t.curve.map((value, step) => ({ type: 'metric', data: { name: 'objective', value, step: step + 1 } })),
          { type: 'progress', data: { done: t.curve.length, total: 5 } },
          { type: 'meta', data: { best_score: Math.max(...t.curve) } },
        ],
      });
      if (t.end === 'succeeded') await post(`/runs/${child.id}/finish`, { status: 'succeeded', output: { objective: t.curve.at(-1) } });
      if (t.end === 'failed') await post(`/runs/${child.id}/finish`, { status: 'failed', error: { message: 'objective diverged (loss is NaN at step 3)' } });
      best = Math.max(best, ...t.curve);
      if (t.end) ended++;
      await post(`/runs/${parent.id}/events`, {
        events: [
          { type: 'metric', data: { name: 'best_objective', value: best, step: i + 1 } },
          { type: 'progress', data: { done: ended, total: trials.length, message: `${ended} of ${trials.length} trials done` } },
        ],
      });
    }
    await page.goto(`${server!.url}/runs/${parent.id}`);
    await page.locator('.children-table tbody tr').nth(trials.length - 1).waitFor();
    await page.getByRole('list', { name: 'latest objective per child run' }).waitFor();
    await page.locator('.timeline .tl-row[data-kind="child"]').nth(trials.length - 1).waitFor();
    // Sorted by the score, best first, as someone picking a winner would.
    await page.locator('.children-table').getByRole('button', { name: 'best_score' }).click();
    await page.locator('.children-table').getByRole('button', { name: 'best_score' }).click();
    expect(await page.locator('.children-table tbody tr td[data-column="name"]').first().textContent()).toBe('experiment-3');
    await screenshot(page, 'run-parent', { fullPage: true });
  });

  it('holds a run that stalled at 3 of 64 and a run cancelled with a reason', async () => {
    const stuck = await post('/runs', { name: 'embed-corpus', stallTimeoutMs: 1500, leaseTtlMs: 600_000, labels: { team: 'search' } });
    ids.stuck = stuck.id;
    await post(`/runs/${stuck.id}/events`, {
      events: [
        { type: 'phase', data: { name: 'embed', status: 'started' } },
        ...[1, 2, 3].map((done) => ({ type: 'progress', data: { done, total: 64, message: `batch ${done} of 64` } })),
      ],
    });
    const cancelled = await post('/runs', { name: 'translate-docs', leaseTtlMs: 600_000 });
    await post(`/runs/${cancelled.id}/events`, { events: [{ type: 'progress', data: { done: 12, total: 40 } }] });
    await post(`/runs/${cancelled.id}/cancel`, { reason: 'wrong target language (de, not fr)' });
    // The producer stops at the request and ends the run with the reason it was given.
    await post(`/runs/${cancelled.id}/finish`, { status: 'cancelled', error: { message: 'wrong target language (de, not fr)' } });

    await page.goto(`${server!.url}/runs/${stuck.id}`);
    await waitUntil(async () => /stalled/.test((await textNow(page.getByTestId('eta'))) ?? ''), {
      what: 'the stalled run to say so',
    });
    await waitUntil(async () => /no progress for [2-9]/.test((await textNow(page.getByTestId('stalled'))) ?? ''), {
      what: 'a couple of seconds stuck',
    });
    await screenshot(page, 'run-stalled');
  });

  it('holds a queued run no live node can start, saying how long it waited and when it ends', async () => {
    // No node defines nightly-import now: it waits for one, and the reaper ends it after queuedOrphanTimeoutMs (10 min).
    const queued = await getRun(ids.queued!);
    expect(queued.status).toBe('queued');
    // The page names the moment the run ends once the reaper has found no node defining it.
    await waitUntil(
      async () => ((await (await fetch(`${server!.url}/api/v1/handlers`)).json()) as HandlersResponse).unclaimable.some((u) => u.handler === 'nightly-import'),
      { what: 'the reaper to find no live node defining nightly-import' },
    );
    await page.goto(`${server!.url}/runs/${queued.id}`);
    await waitUntil(async () => / by \d/.test((await textNow(page.getByTestId('queued-why'))) ?? ''), { what: 'the run page to say when the run ends' });
    expect(await textNow(page.getByTestId('duration-title'))).toBe('Queued for');
    await screenshot(page, 'run-queued', { height: 520 });
  });

  it('holds a crawl of no known total and a report whose artifacts are stored or linked', async () => {
    const crawl = await post('/runs', { name: 'crawl-docs', leaseTtlMs: 600_000, labels: { site: 'docs' } });
    ids.crawl = crawl.id;
    await post(`/runs/${crawl.id}/events`, { events: [{ type: 'progress', data: { done: 12_345, message: 'crawling /guides' } }] });

    const client = new RuntrailClient({ url: server!.url });
    const report = await client.createRun({ name: 'weekly-report' });
    ids.report = report.id;
    await report.artifact('summary.md', '# Weekly eval\n\n- accuracy **91.2%** (+0.8)\n- 3 regressions, all in `legal/`\n', { contentType: 'text/markdown' });
    await report.artifact('scores.csv', 'model,accuracy,latency_ms\ngpt-4,0.912,840\nsmall,0.874,210\n', { contentType: 'text/csv' });
    // Kept in an object store: its preview loads only when the viewer asks, from a button naming the host.
    report.event('artifact', { name: 'confusion.png', uri: 'https://reports.example.com/weekly/confusion.png', contentType: 'image/png' });
    await report.flush();
    await report.succeed({ accuracy: 0.912 });
    await page.goto(`${server!.url}/runs/${report.id}`);
    const artifacts = page.getByRole('region', { name: /^Artifacts/ });
    await page.getByRole('button', { name: 'load from reports.example.com: confusion.png' }).waitFor();
    await waitUntil(async () => (await artifacts.getByRole('table').count()) > 0 && (await artifacts.getByRole('heading', { name: 'Weekly eval' }).count()) > 0, {
      what: 'the stored artifacts\' previews',
    });
    await screenshot(page, 'run-artifacts', { of: artifacts });
  });

  it('holds an LLM evaluation with 8 calls in flight, shown live', async () => {
    const run = await post('/runs', {
      name: 'demo-pipeline',
      execute: true,
      input: { docs: 400, latencyMs: 900, concurrency: 8, failureRate: 0.08 },
      labels: { suite: 'nightly', model: 'mixed' },
    });
    ids.eval = run.id;
    await page.goto(`${server!.url}/runs/${run.id}`);
    await waitUntil(async () => (await page.getByTestId('in-flight').locator('li').count()) === 8, {
      what: '8 calls in flight',
      timeoutMs: 30_000,
    });
    await waitUntil(async () => Number(await page.getByLabel('run progress').getAttribute('value')) >= 8, {
      what: 'the evaluation to be under way',
      timeoutMs: 30_000,
    });
    await page.getByTestId('metric-accuracy').waitFor();
    // The executor running it follows its events too, but only this page is watching.
    await waitUntil(async () => (await textNow(page.getByTestId('observers')))?.includes('1 watching'), {
      what: 'one watcher: this page',
    });
    await screenshot(page, 'run', { fullPage: true });

    // The runs list at 1280 px and on a phone: the failed script with its exception, the stalled
    // run, the parent with its experiments under it.
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: width < 640 ? 844 : 900 });
      await page.goto(`${server!.url}/`);
      await page.locator(`tr[data-run-id="${run.id}"]`).waitFor();
      const row = (id: string) => page.locator(`tr[data-run-id="${id}"]`);
      // A cancelled run's bar is not drawn in the colour of one under way, in the list either.
      expect(await page.getByLabel('progress of translate-docs').getAttribute('class')).toBe('progress progress-cancelled');
      expect(await row(ids.ingest!).getByTestId('reason').textContent()).toBe(
        'error ValueError: shard 3: expected 512 columns, got 511',
      );
      expect(await row(ids.stuck!).getByTestId('stalled').isVisible()).toBe(true);
      // How long the queued run has waited and why; how many pages the crawl of no known total has done.
      // Said once the list has heard which handlers live nodes define (its own request, after the rows).
      await waitUntil(async () => (await textNow(row(ids.queued!).getByTestId('queued-why'))) === 'no live node defines nightly-import', {
        what: 'the queued run to say why it waits',
      });
      expect(await textNow(row(ids.queued!).getByTestId('queued-for'))).toMatch(/^queued \d/);
      expect(await textNow(row(ids.crawl!).getByTestId('progress-count'))).toBe('12,345');
      await page.locator(`tr[data-parent-id="${ids.parent}"]`).nth(5).waitFor();
      expect(await page.getByTestId('totals').textContent()).toBe('15 runs: 1 queued, 6 running (1 stalled), 5 succeeded, 2 failed, 1 cancelled');
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
      await screenshot(page, width < 640 ? 'runs-phone' : 'runs', { fullPage: true });
    }

    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${server!.url}/runs/${ids.ingest}`);
    await page.getByTestId('error-kind').waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    await screenshot(page, 'run-phone');
    await page.goto(`${server!.url}/runs/${ids.parent}`);
    await page.locator('.children-table tbody tr').first().waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    await screenshot(page, 'run-parent-phone', { fullPage: true });
    await post(`/runs/${run.id}/cancel`, { reason: 'scene done' });
    await waitUntil(async () => (await getRun(run.id)).status === 'cancelled', { what: 'the evaluation to stop', timeoutMs: 20_000 });
  });

  it('logged no console errors', () => {
    expect(errors).toEqual([]);
  });
});
