import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectConsoleErrors, postJson, restartingScene, textNow, waitUntil } from './harness.js';

/**
 * The runs list as a user reads it (issue 19.8, 19.9): why each run failed,
 * what a running one is doing, children under their parent, totals, and
 * filters that live in the URL. One scene, seen at 1280 px and 390 px.
 */
const TRACEBACK = ['Traceback (most recent call last):', '  File "train.py", line 9, in <module>', '    fit(lr=3.0)', 'ValueError: lr too high'];
/** How `runtrail exec` words a failed Python script's error (the exception on the first line, then stderr's tail). */
const EXEC_ERROR = ['python3 train.py exited with code 1: ValueError: lr too high', '', 'last 4 lines of stderr:', ...TRACEBACK].join('\n');
/** A producer that reported the traceback itself. */
const RAW_TRACEBACK = ['scoring failed', ...TRACEBACK.slice(0, -1), 'KeyError: \'label\''].join('\n');

interface Scene {
  evalRun: string;
  parent: string;
  children: string[];
  execFailed: string;
  rawTraceback: string;
  stuck: string;
  timedOut: string;
  cancelled: string;
  orphaned: string;
}

describe('the runs list in a real browser', () => {
  // The reaper looks for stalls often, so the stuck run is stalled within a second. The server
  // restarted by the last test gets the same env, as the same node restarting would.
  const served = restartingScene({ prefix: 'runtrail-runs-list-e2e-', node: 'e2e-runs-list', env: { RUNTRAIL_REAPER_INTERVAL_MS: '100' } });
  const scene = {} as Scene;

  const post = <T = { id: string }>(path: string, body: unknown) => postJson<T>(served.server.url, path, body);
  // A lease far longer than the test: no producer heartbeats these runs, and a lapsed lease would end
  // them orphaned mid-test (on a loaded machine the 390 px pass starts more than the default 30 s later).
  const create = (body: object) => post('/runs', { leaseTtlMs: 600_000, ...body }).then((r) => r.id);
  const events = (id: string, list: object[]) => post(`/runs/${id}/events`, { events: list });
  const finish = (id: string, body: object) => post(`/runs/${id}/finish`, body);

  beforeAll(async () => {
    await served.start();

    scene.orphaned = await create({ name: 'nightly-import' });
    await finish(scene.orphaned, { status: 'failed', error: { kind: 'orphaned', message: 'its producer stopped heartbeating' } });
    scene.cancelled = await create({ name: 'backfill' });
    await finish(scene.cancelled, { status: 'cancelled', error: { kind: 'cancelled', message: 'stopped by hand: wrong dataset' } });
    scene.timedOut = await create({ name: 'slow-batch' });
    await finish(scene.timedOut, { status: 'failed', error: { kind: 'timeout', message: 'ran longer than its timeout of 600000 ms' } });
    scene.execFailed = await create({ name: 'train.py', labels: { via: 'exec' } });
    await finish(scene.execFailed, { status: 'failed', error: { kind: 'error', message: EXEC_ERROR } });
    scene.rawTraceback = await create({ name: 'score.py' });
    await finish(scene.rawTraceback, { status: 'failed', error: { kind: 'error', message: RAW_TRACEBACK } });

    scene.parent = await create({ name: 'autotune-lr', labels: { sweep: 'lr' } });
    scene.children = [];
    for (const [i, end] of (['succeeded', 'failed', null] as const).entries()) {
      const child = await create({ name: `experiment-${i + 1}`, parentId: scene.parent, input: { lr: i + 1 } });
      scene.children.push(child);
      if (end === 'succeeded') await finish(child, { status: 'succeeded', output: { score: 0.9 } });
      if (end === 'failed') await finish(child, { status: 'failed', error: { kind: 'error', message: 'diverged at step 40' } });
    }

    scene.stuck = await create({ name: 'stuck-job', stallTimeoutMs: 300 });
    await events(scene.stuck, [{ type: 'progress', data: { done: 3, total: 64 } }]);

    scene.evalRun = await create({ name: 'llm-eval', labels: { model: 'gpt-4' } });
    await events(scene.evalRun, [
      { type: 'phase', data: { name: 'evaluate', status: 'started' } },
      ...Array.from({ length: 8 }, (_, i) => ({ type: 'call.started', data: { callId: `c${i}`, label: `doc_${i}` } })),
      { type: 'progress', data: { done: 12, total: 64, message: 'judging doc_12' } },
    ]);
    await waitUntil(
      async () => {
        const run = (await (await fetch(`${served.server.url}/api/v1/runs/${scene.stuck}`)).json()) as { snapshot: { stalled: unknown } };
        return run.snapshot.stalled !== null;
      },
      { what: 'the stuck run to be stalled', timeoutMs: 15_000 },
    );
  });

  const row = (page: Page, id: string) => page.locator(`tr[data-run-id="${id}"]`);
  const shownIds = (page: Page) => page.locator('tbody tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id')));
  const query = (page: Page) => Object.fromEntries(new URL(page.url()).searchParams);

  for (const width of [1280, 390]) {
    describe(`at ${width} px`, () => {
      let page: Page;
      let errors: string[];
      beforeAll(async () => {
        page = await served.browser.newPage({ viewport: { width, height: 900 } });
        errors = collectConsoleErrors(page);
      });
      afterAll(() => page.close());

      it('says in each row how a run failed and why, what a running one is doing, and which is stalled', async () => {
        // A fresh reading: the ETA is of a run under way, however long the tests before this one took
        // (30 s without progress, the row would rightly say "no progress for 30 s" instead).
        await events(scene.evalRun, [{ type: 'progress', data: { done: 12, total: 64, message: 'judging doc_12' } }]);
        await page.goto(`${served.server.url}/`);
        await row(page, scene.evalRun).waitFor();

        const exec = row(page, scene.execFailed);
        expect(await exec.getByTestId('failure-kind').textContent()).toBe('error');
        // The exception, not how the command ended nor a traceback's first line; the whole error is the row's title.
        expect(await exec.getByTestId('reason').textContent()).toBe('error ValueError: lr too high');
        expect(await exec.getByTestId('reason').getAttribute('title')).toBe(EXEC_ERROR);
        expect(await row(page, scene.rawTraceback).getByTestId('reason').textContent()).toBe("error KeyError: 'label'");
        expect(await row(page, scene.timedOut).getByTestId('reason').textContent()).toBe('timeout ran longer than its timeout of 600000 ms');
        expect(await row(page, scene.cancelled).getByTestId('reason').textContent()).toBe('cancelled stopped by hand: wrong dataset');
        expect(await row(page, scene.orphaned).getByTestId('failure-kind').textContent()).toBe('orphaned');

        const stuck = row(page, scene.stuck);
        expect(await stuck.getByTestId('stalled').textContent()).toBe('stalled');
        expect(await stuck.getByTestId('progress-notes').textContent()).toMatch(/^stalled \d/);
        // Its bar in the warning colour, as on its own page; the one under way keeps the running colour.
        expect(await stuck.locator('progress').getAttribute('class')).toBe('progress progress-running progress-stalled');

        const evalRow = row(page, scene.evalRun);
        expect(await evalRow.getByTestId('activity').textContent()).toBe('evaluate · judging doc_12');
        // The ETA from the rate so far: 52 of 64 to go.
        expect(await evalRow.getByTestId('progress-notes').textContent()).toMatch(/^8 in flight~\d.* left$/);
        expect(await evalRow.getByTestId('stalled').count()).toBe(0);
        expect(await evalRow.locator('progress').getAttribute('class')).toBe('progress progress-running');

        // Ten minutes on without progress, the row gives no ETA but says how long it has been quiet.
        const later = await served.browser.newContext({ viewport: { width, height: 900 } });
        await later.clock.install({ time: Date.now() + 10 * 60_000 });
        const ahead = await later.newPage();
        await ahead.goto(`${served.server.url}/?q=llm-eval`);
        await row(ahead, scene.evalRun).waitFor();
        expect(await row(ahead, scene.evalRun).getByTestId('progress-notes').textContent()).toMatch(/^8 in flightno progress for 1\d\sm\s\d+\ss$/);
        expect(await row(ahead, scene.evalRun).locator('progress').getAttribute('class')).toBe('progress progress-running progress-stalled');
        await later.close();

        // On a phone too, the status and the progress of a run stay in view.
        for (const r of [evalRow, stuck]) {
          expect(await r.getByTestId('status').isVisible()).toBe(true);
          const bar = r.locator('progress');
          expect(await bar.isVisible()).toBe(true);
          const box = (await bar.boundingBox())!;
          expect(box.x + box.width).toBeLessThanOrEqual(width);
        }
        expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      });

      it('nests children under their parent, collapsible, and totals the statuses shown', async () => {
        await page.goto(`${served.server.url}/`);
        await row(page, scene.children[0]!).waitFor();
        const ids = await shownIds(page);
        const at = ids.indexOf(scene.parent);
        // Each child once, right under its parent, newest first; no flat duplicate row.
        expect(ids.slice(at, at + 1 + scene.children.length)).toEqual([scene.parent, ...scene.children.slice().reverse()]);
        expect(ids.filter((id) => scene.children.includes(id!))).toHaveLength(scene.children.length);
        for (const child of scene.children) expect(await row(page, child).getAttribute('data-parent-id')).toBe(scene.parent);
        expect(await row(page, scene.children[1]!).getByTestId('reason').textContent()).toBe('error diverged at step 40');

        // 4 running (eval, stuck, parent, experiment-3), 1 of them stalled, 5 failed, 1 cancelled; the
        // experiments added by an earlier pass of this test succeeded.
        const succeeded = scene.children.length - 2;
        await waitUntil(
          async () =>
            (await textNow(page.getByTestId('totals'))) ===
            `${10 + succeeded} runs: 4 running (1 stalled), ${succeeded} succeeded, 5 failed, 1 cancelled`,
          { what: 'the status totals' },
        );

        // A status in the totals lists those runs alone, as the filters would.
        await page.getByTestId('totals').getByRole('button', { name: '1 cancelled: list only the cancelled runs' }).click();
        await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.cancelled]), { what: 'the cancelled run alone' });
        expect(query(page)).toEqual({ status: 'cancelled' });
        expect(await page.getByLabel('filter by status').inputValue()).toBe('cancelled');
        await page.getByRole('button', { name: 'Clear', exact: true }).click();
        await row(page, scene.children[0]!).waitFor();
        await page.getByTestId('totals').getByRole('button', { name: '1 stalled: list only the stalled runs' }).click();
        await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.stuck]), { what: 'the stalled run alone' });
        expect(query(page)).toEqual({ failed: 'stalled' });
        expect(await page.getByLabel('filter by failure kind').inputValue()).toBe('stalled');
        await page.goto(`${served.server.url}/`);
        await row(page, scene.children[0]!).waitFor();

        const n = scene.children.length;
        const toggle = page.getByRole('button', { name: `${n} child runs of autotune-lr`, exact: true });
        expect(await toggle.getAttribute('aria-expanded')).toBe('true');
        await toggle.click();
        await waitUntil(async () => (await row(page, scene.children[0]!).count()) === 0, { what: 'the children to fold away' });
        expect(await toggle.getAttribute('aria-expanded')).toBe('false');
        await toggle.click();
        await row(page, scene.children[0]!).waitFor();

        // A child started now appears under its parent, live.
        const late = await create({ name: `experiment-${n + 1}`, parentId: scene.parent });
        await row(page, late).waitFor();
        const after = await shownIds(page);
        expect(after[after.indexOf(scene.parent) + 1]).toBe(late);
        await finish(late, { status: 'succeeded' });
        scene.children.push(late);
      });

      it('filters by name, failure kind and time as you type, keeps them in the URL and across a reload', async () => {
        await page.goto(`${served.server.url}/`);
        await row(page, scene.evalRun).waitFor();

        await page.getByLabel('search run names').fill('EXPERIMENT');
        await waitUntil(async () => query(page).q === 'EXPERIMENT', { what: 'the search in the URL' });
        // A search finds children too, each in its own row saying whose child it is.
        await waitUntil(async () => (await shownIds(page)).every((id) => id !== scene.parent && id !== scene.evalRun) && (await shownIds(page)).length >= 3, {
          what: 'only the experiments listed',
        });
        expect(await row(page, scene.children[0]!).textContent()).toContain(`child of ${scene.parent.slice(-8)}`);

        await page.getByLabel('filter by failure kind').selectOption('error');
        await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.children[1]]), { what: 'the failed experiment alone' });
        await page.getByLabel('filter by start time').selectOption('1h');
        expect(query(page)).toEqual({ q: 'EXPERIMENT', failed: 'error', since: '1h' });
        await waitUntil(async () => (await textNow(page.getByTestId('totals'))) === '1 run matches: 1 failed', { what: 'the filtered totals' });

        await page.reload();
        await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.children[1]]), { what: 'the same list after a reload' });
        expect(await page.getByLabel('search run names').inputValue()).toBe('EXPERIMENT');
        expect(await page.getByLabel('filter by failure kind').inputValue()).toBe('error');
        expect(await page.getByLabel('filter by start time').inputValue()).toBe('1h');

        // A time range counts back from now: in a browser two hours ahead, "last hour" holds none of
        // these runs and "last 24 hours" all of them.
        const later = await served.browser.newContext({ viewport: { width, height: 900 } });
        await later.clock.install({ time: Date.now() + 2 * 3600_000 });
        const ahead = await later.newPage();
        await ahead.goto(`${served.server.url}/?since=1h`);
        await waitUntil(async () => ((await textNow(ahead.getByTestId('runs-empty'))) ?? '').startsWith('No runs match these filters.'), {
          what: 'no run in the last hour, two hours on',
        });
        await ahead.getByLabel('filter by start time').selectOption('24h');
        await row(ahead, scene.evalRun).waitFor();
        expect(query(ahead)).toEqual({ since: '24h' });
        await later.close();

        // A link with filters opens the same list in another tab.
        const shared = await served.browser.newPage({ viewport: { width, height: 900 } });
        await shared.goto(`${served.server.url}/?failed=timeout`);
        await waitUntil(async () => JSON.stringify(await shownIds(shared)) === JSON.stringify([scene.timedOut]), { what: 'the shared link’s list' });
        await shared.close();

        await page.getByLabel('filter by failure kind').selectOption('stalled');
        await page.getByLabel('search run names').fill('stuck');
        await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.stuck]), { what: 'the stalled run found by its failure kind' });

        await page.getByLabel('search run names').fill('no-such-run-anywhere');
        const empty = page.getByTestId('runs-empty');
        await waitUntil(async () => (await empty.count()) === 1 && (await empty.textContent())!.startsWith('No runs match these filters.'), {
          what: 'the empty state',
        });
        expect(await page.getByText('No runs yet').count()).toBe(0);
        await empty.getByRole('button', { name: 'Clear the filters' }).click();
        await row(page, scene.evalRun).waitFor();
        expect(new URL(page.url()).search).toBe('');
        expect(await page.getByLabel('search run names').inputValue()).toBe('');
      });

      it('logged no console errors', () => {
        expect(errors).toEqual([]);
      });
    });
  }

  it('totals every run the filter matches, not only the page shown, at 1280 and 390 px', async () => {
    const bulk: string[] = [];
    for (let i = 0; i < 27; i++) bulk.push(await create({ name: `bulk-${i}` }));
    for (const id of bulk.slice(0, 3)) await finish(id, { status: 'failed', error: { kind: 'timeout', message: 'slow' } });
    for (const width of [1280, 390]) {
      const page = await served.browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(`${served.server.url}/?q=bulk`);
      await waitUntil(async () => (await shownIds(page)).length === 25, { what: 'a full first page' });
      const totals = '27 runs match: 24 running, 3 failed';
      await waitUntil(async () => (await textNow(page.getByTestId('totals'))) === totals, { what: 'totals over both pages' });
      await page.getByRole('button', { name: 'older runs' }).click();
      await waitUntil(async () => (await shownIds(page)).length === 2, { what: 'the 2 oldest on page 2' });
      expect(await page.getByTestId('totals').textContent()).toBe(totals);
      await page.close();
    }
    for (const id of bulk.slice(3)) await finish(id, { status: 'succeeded' });
  });

  it('nests a family to any depth: grandchildren under their parent, each generation foldable, new ones live', async () => {
    const root = await create({ name: 'family-sweep' });
    const child = await create({ name: 'family-trial', parentId: root });
    const sibling = await create({ name: 'family-trial-b', parentId: root });
    const grandchild = await create({ name: 'family-fold', parentId: child });
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.server.url}/`);
    await row(page, grandchild).waitFor();
    let late: string | null = null;
    const family = async () => (await shownIds(page)).filter((id) => [root, child, sibling, grandchild, late].includes(id));
    // Newest first in each generation, each run right under its parent.
    expect(await family()).toEqual([root, sibling, child, grandchild]);
    expect(await row(page, grandchild).getAttribute('data-depth')).toBe('2');
    expect(await row(page, grandchild).getAttribute('data-parent-id')).toBe(child);
    // A grandchild's row sits further in than its parent's.
    const indent = async (id: string) => (await row(page, id).locator('.nest-mark').boundingBox())!.x;
    expect(await indent(grandchild)).toBeGreaterThan(await indent(child));

    // A great-grandchild started now appears under its parent, live.
    late = await create({ name: 'family-fold-3', parentId: grandchild });
    await row(page, late).waitFor();
    expect(await family()).toEqual([root, sibling, child, grandchild, late]);
    expect(await row(page, late).getAttribute('data-depth')).toBe('3');

    // Folding a child hides its whole line; unfolding brings it back.
    const fold = page.getByRole('button', { name: '1 child run of family-trial', exact: true });
    await fold.click();
    await waitUntil(async () => JSON.stringify(await family()) === JSON.stringify([root, sibling, child]), { what: 'the grandchildren folded away' });
    expect(await fold.getAttribute('aria-expanded')).toBe('false');
    await fold.click();
    await waitUntil(async () => JSON.stringify(await family()) === JSON.stringify([root, sibling, child, grandchild, late]), { what: 'the grandchildren again' });
    await page.close();
    for (const id of [late, grandchild, child, sibling, root]) await finish(id, { status: 'succeeded' });
  });

  it('says at every depth when a family has more children than the list shows, and how many', async () => {
    const root = await create({ name: 'big-family' });
    const older = await create({ name: 'big-older', parentId: root });
    const olderKids = [await create({ name: 'big-older-1', parentId: older }), await create({ name: 'big-older-2', parentId: older })];
    const wide = await create({ name: 'big-trials', parentId: root });
    // One more grandchild than the list asks for under a group of parents (200): their newest 200 are big-trials'.
    const wideKids: string[] = [];
    for (let i = 0; i < 201; i += 25) {
      const batch = Array.from({ length: Math.min(25, 201 - i) }, (_, j) => create({ name: `big-trial-${i + j}`, parentId: wide }));
      wideKids.push(...(await Promise.all(batch)));
    }
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.server.url}/`);
    // Two levels down, the parent with more children than shown says so, with how many there are.
    const wideToggle = row(page, wide).locator('button.toggle');
    await waitUntil(async () => (await textNow(wideToggle)) === '▾ 200 of 201', { what: 'big-trials to say it shows 200 of its 201 children' });
    expect(await wideToggle.getAttribute('aria-label')).toBe('200 of 201 child runs of big-trials');
    // Its sibling's children are older than all 200 shown: none of them is listed, and its row says they exist.
    await waitUntil(async () => (await textNow(row(page, older).getByTestId('unlisted-children'))) === '2 child runs, not listed', {
      what: 'big-older to say its 2 children are not listed',
    });
    expect(await row(page, older).getByTestId('unlisted-children').getAttribute('href')).toBe(`/runs/${older}`);
    // A family shown whole says just how many.
    expect(await textNow(row(page, root).locator('button.toggle'))).toBe('▾ 2');
    await page.close();
    for (let i = 0; i < wideKids.length; i += 25) await Promise.all(wideKids.slice(i, i + 25).map((id) => finish(id, { status: 'succeeded' })));
    for (const id of [...olderKids, older, wide, root]) await finish(id, { status: 'succeeded' });
    // 204 rows more would make every later page of this list long, and its scroll-back test slow to settle.
    const gone = await fetch(`${served.server.url}/api/v1/runs/${root}`, { method: 'DELETE', headers: { 'x-runtrail-client': '1' } });
    expect(gone.status, await gone.text()).toBeLessThan(300);
  });

  it('re-counts the totals at once when a run ends at any depth shown, not at the next poll', async () => {
    const root = await create({ name: 'deep-recount' });
    const child = await create({ name: 'deep-recount-1', parentId: root });
    const grandchild = await create({ name: 'deep-recount-2', parentId: child });
    const greatGrandchild = await create({ name: 'deep-recount-3', parentId: grandchild });
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    // When the page asked for the totals (not a family's count, which names its parent).
    const asked: number[] = [];
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (url.pathname.endsWith('/run-counts') && !url.searchParams.has('parentId')) asked.push(Date.now());
    });
    await page.goto(`${served.server.url}/`);
    await row(page, greatGrandchild).waitFor();
    for (const id of [greatGrandchild, grandchild]) {
      // Right after a read of the totals, so the next poll is a whole interval (5 s) away.
      const seen = asked.length;
      await waitUntil(() => asked.length > seen, { what: 'a read of the totals' });
      const last = asked.at(-1)!;
      await finish(id, { status: 'succeeded' });
      await waitUntil(async () => (await textNow(row(page, id).getByTestId('status'))) === 'succeeded', { what: 'the row to show the run ended' });
      const next = await waitUntil(() => asked.find((t) => t > last), { what: 'the totals to be read again', timeoutMs: 15_000 });
      expect(next - last, `depth ${id === grandchild ? 2 : 3}`).toBeLessThan(4000);
    }
    await page.close();
    for (const id of [child, root]) await finish(id, { status: 'succeeded' });
  });

  it('a page address the server refuses (a hand-edited cursor) says why once, instead of reconnecting for ever', async () => {
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.server.url}/?cursor=garbage`);
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('cursor: must be a run id');
    // Before: "reconnecting…" and "No runs to show until the server answers", asking again and again.
    await waitUntil(async () => (await textNow(page.getByTestId('connection'))) === 'ended', { what: 'the indicator to stop reconnecting' });
    await page.getByText('No runs to show: the server refused this page').waitFor();
    await page.getByRole('button', { name: 'newer runs' }).click();
    await waitUntil(() => new URL(page.url()).searchParams.get('cursor') === null, { what: 'the first page' });
    await page.close();
  });

  it('keeps the page of the list in the URL: Back from a run, a reload and the run page’s "All runs" return to it', async () => {
    // The 27 bulk runs of the test above: 25 on page 1, 2 on page 2.
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageNumber = () => textNow(page.getByRole('navigation', { name: 'pages of runs' }).getByText(/^page \d+$/));
    const onPage2 = async () => (await pageNumber()) === 'page 2' && (await shownIds(page)).length === 2;
    await page.goto(`${served.server.url}/?q=bulk`);
    await waitUntil(async () => (await shownIds(page)).length === 25, { what: 'a full first page' });
    await page.getByRole('button', { name: 'older runs' }).click();
    await waitUntil(onPage2, { what: 'the 2 oldest on page 2' });
    const page2 = page.url();
    expect(new URL(page2).searchParams.get('q')).toBe('bulk');
    expect(new URL(page2).searchParams.getAll('cursor')).toHaveLength(1);

    await page.reload();
    await waitUntil(onPage2, { what: 'page 2 again after a reload' });

    // Open a run, go back: the same page, not the first.
    const [first] = await shownIds(page);
    await row(page, first!).getByRole('link').first().click();
    await waitUntil(() => new URL(page.url()).pathname === `/runs/${first}`, { what: 'the run page' });
    await page.goBack();
    await waitUntil(onPage2, { what: 'page 2 after Back' });
    expect(page.url()).toBe(page2);

    // "All runs" on a run page returns to the list as it was, filter and page.
    await row(page, first!).getByRole('link').first().click();
    await page.getByRole('link', { name: '← All runs' }).click();
    await waitUntil(onPage2, { what: 'page 2 from “All runs”' });
    expect(page.url()).toBe(page2);
    expect(await page.getByLabel('search run names').inputValue()).toBe('bulk');

    // Newer is a step in the history too: Back undoes it.
    await page.getByRole('button', { name: 'newer runs' }).click();
    await waitUntil(async () => (await pageNumber()) === 'page 1' && (await shownIds(page)).length === 25, { what: 'page 1' });
    expect(Object.fromEntries(new URL(page.url()).searchParams)).toEqual({ q: 'bulk' });
    await page.goBack();
    await waitUntil(onPage2, { what: 'page 2 after Back from page 1' });
    await page.close();
  });

  it('a long name wraps and a long label is cut (whole in its title): neither runs over the other columns, at 1280 and 390 px', async () => {
    const label = { ['k'.repeat(40)]: 'v'.repeat(200) };
    const longName = await create({ name: `wide-${'N'.repeat(195)}` });
    const longLabel = await create({ name: 'wide-labelled', labels: label });
    for (const width of [1280, 390]) {
      const page = await served.browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(`${served.server.url}/?q=wide-`);
      await waitUntil(async () => (await shownIds(page)).length === 2, { what: 'the two wide runs' });
      for (const id of [longName, longLabel]) {
        // Everything in the name cell ends before the status column starts.
        const overlap = await row(page, id).evaluate((tr) => {
          const status = tr.querySelector('td.col-status')!.getBoundingClientRect().left;
          return [...tr.querySelectorAll('td.col-name .run-name, td.col-name .label')]
            .map((el) => el.getBoundingClientRect())
            .filter((box) => box.width > 0)
            .map((box) => box.right - status)
            .filter((over) => over > 0.5);
        });
        expect(overlap, `${id} at ${width} px`).toEqual([]);
      }
      const shown = row(page, longLabel).locator('.label');
      expect(await shown.getAttribute('title')).toBe(`${'k'.repeat(40)}=${'v'.repeat(200)}`);
      // The whole name is there to read, wrapped.
      expect(await row(page, longName).locator('.run-name').textContent()).toBe(`wide-${'N'.repeat(195)}`);
      expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      await page.close();
    }
    for (const id of [longName, longLabel]) await finish(id, { status: 'succeeded' });
  });

  it('on a phone a run\'s progress bar and its percentage fit their column: the list does not scroll sideways, at 375 and 390 px', async () => {
    const done = await create({ name: 'fits-done' });
    await events(done, [{ type: 'progress', data: { done: 10, total: 10 } }]);
    const half = await create({ name: 'fits-half' });
    await events(half, [{ type: 'progress', data: { done: 47, total: 100 } }]);
    for (const width of [375, 390]) {
      const page = await served.browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(`${served.server.url}/?q=fits-`);
      await waitUntil(async () => (await shownIds(page)).length === 2, { what: 'the two runs with progress' });
      for (const id of [done, half]) {
        const over = await row(page, id).evaluate((tr) => {
          const cell = tr.querySelector('td.col-progress')!.getBoundingClientRect();
          const text = tr.querySelector('td.col-progress .progress-text')!.getBoundingClientRect();
          return text.right - cell.right;
        });
        expect(over, `${id} at ${width} px`).toBeLessThanOrEqual(0);
      }
      const wrap = page.locator('.table-wrap');
      expect(await wrap.evaluate((el) => el.scrollWidth - el.clientWidth), `at ${width} px`).toBeLessThanOrEqual(0);
      await page.close();
    }
    for (const id of [done, half]) await finish(id, { status: 'succeeded' });
  });

  it('marks a running run whose cancel was asked for, until its owner stops it', async () => {
    const id = await create({ name: 'asked-to-stop' });
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.server.url}/?q=asked-to-stop`);
    await row(page, id).waitFor();
    expect(await row(page, id).getByTestId('cancel-requested').count()).toBe(0);
    await post(`/runs/${id}/cancel`, { reason: 'wrong dataset' });
    await waitUntil(async () => (await textNow(row(page, id).getByTestId('cancel-requested'))) === 'cancel requested', {
      what: 'the row to say a cancel was asked for',
    });
    await finish(id, { status: 'cancelled', error: { kind: 'cancelled', message: 'stopped' } });
    await waitUntil(async () => (await row(page, id).getByTestId('cancel-requested').count()) === 0, { what: 'the mark to go once it ended' });
    await page.close();
  });

  it('Back from a run returns to where the reader was in the list, not to its top', async () => {
    // A short window, so the list scrolls.
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 400 } });
    await page.goto(`${served.server.url}/`);
    const rows = page.locator('tr[data-run-id]');
    await waitUntil(async () => (await rows.count()) >= 8 || null, { what: 'the list to show its runs' });
    const link = rows.last().locator('a.run-name');
    await link.scrollIntoViewIfNeeded();
    // Where the reader is when they click: rows still arriving (a family's children) move the page
    // after any earlier reading (scroll anchoring), so it is taken by the page at the click itself.
    await page.evaluate(() => {
      window.addEventListener('click', () => ((window as unknown as { yAtClick: number }).yAtClick = window.scrollY), { capture: true, once: true });
    });
    await link.click();
    await page.getByRole('heading', { level: 1 }).waitFor();
    const y = await page.evaluate(() => (window as unknown as { yAtClick: number }).yAtClick);
    expect(y).toBeGreaterThan(100);
    expect(await page.evaluate(() => window.scrollY)).toBe(0);
    await page.goBack();
    await waitUntil(async () => Math.abs((await page.evaluate(() => window.scrollY)) - y) <= 1, { what: `the list scrolled back to ${y}` });
    await page.close();
  });

  it('shows no call counters for a run that makes no calls, as its page shows none', async () => {
    const quiet = await create({ name: 'calls-none' });
    const busy = await create({ name: 'calls-some' });
    await events(busy, [
      { type: 'call.started', data: { callId: 'a', label: 'a' } },
      { type: 'call.succeeded', data: { callId: 'a' } },
      { type: 'call.started', data: { callId: 'b', label: 'b' } },
      { type: 'call.failed', data: { callId: 'b', error: 'no', willRetry: false } },
    ]);
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.server.url}/?q=calls-`);
    await waitUntil(async () => (await textNow(row(page, busy).locator('.col-counters'))) === '1 / 1 / 0', { what: 'the busy run’s counters' });
    expect(await row(page, quiet).locator('.col-counters').textContent()).toBe('–');
    await page.close();
    for (const id of [quiet, busy]) await finish(id, { status: 'succeeded' });
  });

  it('estimates a running run\'s time left from the pace the page sees, as the run page does, not the whole run\'s average', async () => {
    const id = await create({ name: 'slowing-batch' });
    await events(id, [{ type: 'progress', data: { done: 100, total: 1000 } }]);
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.server.url}/?q=slowing-batch`);
    const bar = row(page, id).getByLabel('progress of slowing-batch');
    await bar.waitFor();
    // 100 done at once, then one item every 2 s (stamped so, sent at once): 900 left at 0.5 a second is
    // about 30 minutes; the average since the start would say under 2.
    const t0 = Date.now();
    for (let i = 1; i <= 5; i++) {
      await events(id, [{ type: 'progress', data: { done: 100 + i }, ts: t0 + 2000 * i }]);
      // The list sees each reading before the next is sent.
      await waitUntil(async () => Number(await bar.getAttribute('value')) === (100 + i) / 10, { what: `reading ${i} on the page` });
    }
    const minutes = async () => {
      const m = /~(?:(\d+)\sh\s)?(\d+)\sm(?:\s\d+\ss)? left/.exec((await textNow(row(page, id).getByTestId('progress-notes'))) ?? '');
      return m ? Number(m[1] ?? 0) * 60 + Number(m[2]) : null;
    };
    expect(await minutes()).toBeGreaterThanOrEqual(20);
    await page.close();
  });

  it('Clear always clears, and while the labels box holds no filter the list says which labels it is filtered by', async () => {
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const labels = page.getByLabel('filter by labels (key=value, comma separated)');
    const note = page.getByText(/^labels must be key=value/);
    const clear = page.getByRole('button', { name: 'Clear', exact: true });
    await page.goto(`${served.server.url}/?label=nonsense`);
    await note.waitFor();
    expect(await note.textContent()).toBe('labels must be key=value, comma separated; the list is not filtered by labels');
    expect(await clear.isEnabled()).toBe(true);
    await clear.click();
    await waitUntil(async () => new URL(page.url()).search === '' && (await labels.inputValue()) === '' && (await note.count()) === 0, {
      what: 'the labels cleared',
    });
    expect(await clear.isDisabled()).toBe(true);

    await labels.fill('sweep=lr');
    await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.parent]), { what: 'the sweep alone' });
    // Half-typed: the list keeps the labels it had, and says so.
    await labels.fill('sweep=lr,oops');
    await note.waitFor();
    expect(await note.textContent()).toBe('labels must be key=value, comma separated; the list still shows only runs labelled sweep=lr');
    expect(await shownIds(page)).toEqual([scene.parent]);
    expect(await clear.isEnabled()).toBe(true);
    await clear.click();
    await waitUntil(async () => new URL(page.url()).search === '' && (await labels.inputValue()) === '' && (await shownIds(page)).length > 1, {
      what: 'the whole list again',
    });
    await page.close();
  });

  it('while the labels box holds half-typed text, the name search and the selects still apply, and the text stays as typed', async () => {
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const labels = page.getByLabel('filter by labels (key=value, comma separated)');
    const search = page.getByRole('searchbox', { name: 'search run names' });
    const note = page.getByText(/^labels must be key=value/);
    await page.goto(`${served.server.url}/?q=experiment-1&label=sweep%3Dlr`);
    await waitUntil(async () => (await shownIds(page)).length === 0, { what: 'no run both named experiment-1 and labelled sweep=lr' });
    await labels.fill('sweep=lr,oops');
    await note.waitFor();
    // Clearing the search lists the runs labelled sweep=lr, the filter the note says is still applied.
    await search.fill('');
    await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.parent]), {
      what: 'the search cleared while the labels box is half-typed',
    });
    expect(query(page)).toEqual({ label: 'sweep=lr' });
    expect(await labels.inputValue()).toBe('sweep=lr,oops');
    expect(await note.textContent()).toBe('labels must be key=value, comma separated; the list still shows only runs labelled sweep=lr');
    // A select too applies at once, and keeps both the applied labels and the half-typed text.
    await page.getByRole('combobox', { name: 'filter by status' }).selectOption('failed');
    await waitUntil(async () => query(page).status === 'failed' && (await shownIds(page)).length === 0, { what: 'no failed run labelled sweep=lr' });
    expect(query(page)).toEqual({ status: 'failed', label: 'sweep=lr' });
    expect(await labels.inputValue()).toBe('sweep=lr,oops');
    await page.close();
  });

  it('says the server is unreachable and that it retries, never "Failed to fetch", and recovers, at 1280 and 390 px', async () => {
    const pages: Page[] = [];
    for (const width of [1280, 390]) {
      const page = await served.browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(`${served.server.url}/?q=llm`);
      await row(page, scene.evalRun).waitFor();
      pages.push(page);
    }
    await served.stop();
    for (const page of pages) {
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: 20_000 });
      expect(await alert.textContent()).toMatch(/^The server is unreachable \(127\.0\.0\.1:\d+ does not answer\); retrying automatically…$/);
      expect(await page.getByText(/failed to fetch/i).count()).toBe(0);
    }
    // Back on the same port: the list comes back by itself, the filter still applied.
    await served.start();
    for (const page of pages) {
      await waitUntil(async () => (await page.getByRole('alert').count()) === 0, { what: 'the alert to go once the server answers', timeoutMs: 30_000 });
      await waitUntil(async () => JSON.stringify(await shownIds(page)) === JSON.stringify([scene.evalRun]), { what: 'the filtered list again' });
      await page.close();
    }
  });
});
