import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/**
 * The dashboard for a reader who does not use a mouse or does not see the
 * screen well: contrast measured from the styles the browser computed,
 * motion under prefers-reduced-motion, what a screen reader is told while a
 * run goes on (read from Chromium's own accessibility tree), and where the
 * keyboard focus goes.
 */

interface ApiRun {
  id: string;
  status: string;
}

/**
 * The live regions of the page as Chromium's accessibility tree has them
 * (what a screen reader announces when their content changes): each one's
 * role and name, "role name" or "role" when it has none. Implicit ones
 * count (role log and status are polite by default).
 */
async function liveRegions(page: Page): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
      nodes: { role?: { value: string }; name?: { value: string }; properties?: { name: string; value: { value: unknown } }[] }[];
    };
    // Only a region's root carries `live`; what is inside it inherits (containerLive).
    const live = (n: (typeof nodes)[number]) => n.properties?.find((p) => p.name === 'live')?.value.value;
    return nodes.filter((n) => live(n) !== undefined && live(n) !== 'off').map((n) => [n.role?.value, n.name?.value].filter(Boolean).join(' '));
  } finally {
    await cdp.detach();
  }
}

/**
 * Every button and link whose accessible name (as Chromium's accessibility
 * tree computes it) does not start with the text it shows, as
 * "role: shown → name" (WCAG 2.5.3 Label in Name: a voice-control user says
 * what they see, and the visible words first in the name is the practice
 * WCAG recommends: "hide the 3 child runs of x" for a button showing "▾ 3"
 * contained them, but "click 3" found it only by luck). Only words and
 * numbers count: a glyph such as ▸, ← or ✕ is not something a reader says.
 */
async function labelsNotFirstInName(page: Page): Promise<string[]> {
  const words = (text: string) => (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).join(' ');
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
      nodes: { ignored: boolean; role?: { value: string }; name?: { value: string }; backendDOMNodeId?: number }[];
    };
    const bad: string[] = [];
    for (const n of nodes) {
      const role = n.role?.value;
      if (n.ignored || (role !== 'button' && role !== 'link') || n.backendDOMNodeId === undefined) continue;
      const { object } = (await cdp.send('DOM.resolveNode', { backendNodeId: n.backendDOMNodeId })) as { object: { objectId: string } };
      const { result } = (await cdp.send('Runtime.callFunctionOn', {
        objectId: object.objectId,
        functionDeclaration: 'function () { return this.innerText ?? this.textContent ?? ""; }',
        returnByValue: true,
      })) as { result: { value: string } };
      const shown = words(result.value);
      const name = n.name?.value ?? '';
      if (shown !== '' && !`${words(name)} `.startsWith(`${shown} `)) bad.push(`${role}: ${result.value.trim()} → ${name}`);
    }
    return bad;
  } finally {
    await cdp.detach();
  }
}

/**
 * Every piece of visible text on the page whose colour against what is
 * behind it is below WCAG AA (4.5:1; 3:1 for large text), as
 * "text: ratio (colour on background)". Backgrounds are composited from
 * the element up to the first opaque one; disabled controls are exempt
 * (WCAG 1.4.3), so are form fields' placeholders only when they are
 * covered by a value.
 */
function lowContrastTexts(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    type Rgba = [number, number, number, number];
    const probe = document.createElement('span');
    document.body.append(probe);
    // Whatever the notation the browser computed (rgb(), color(srgb …), color-mix results), read back as rgba by a canvas.
    const canvas = document.createElement('canvas').getContext('2d', { willReadFrequently: true })!;
    const rgba = (css: string): Rgba => {
      canvas.clearRect(0, 0, 1, 1);
      canvas.fillStyle = '#000';
      canvas.fillStyle = css;
      canvas.fillRect(0, 0, 1, 1);
      const [r, g, b, a] = canvas.getImageData(0, 0, 1, 1).data;
      return [r!, g!, b!, a! / 255];
    };
    const over = (top: Rgba, below: Rgba): Rgba => {
      const a = top[3];
      return [top[0] * a + below[0] * (1 - a), top[1] * a + below[1] * (1 - a), top[2] * a + below[2] * (1 - a), 1];
    };
    const background = (el: Element | null): Rgba => {
      const layers: Rgba[] = [];
      for (let at = el; at; at = at.parentElement) {
        const c = rgba(getComputedStyle(at).backgroundColor);
        if (c[3] > 0) layers.push(c);
        if (c[3] >= 1) break;
      }
      let out: Rgba = [255, 255, 255, 1];
      for (const layer of layers.reverse()) out = over(layer, out);
      return out;
    };
    const luminance = ([r, g, b]: Rgba) => {
      const lin = (v: number) => (v / 255 <= 0.03928 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const ratio = (a: Rgba, b: Rgba) => {
      const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
      return (hi! + 0.05) / (lo! + 0.05);
    };
    const large = (style: CSSStyleDeclaration) => {
      const px = parseFloat(style.fontSize);
      return px >= 24 || (px >= 18.66 && Number(style.fontWeight) >= 700);
    };
    const bad: string[] = [];
    const check = (el: Element, text: string, style: CSSStyleDeclaration) => {
      const bg = background(el);
      const fg = over(rgba(style.color), bg);
      const r = ratio(fg, bg);
      if (r < (large(style) ? 3 : 4.5)) bad.push(`${text.slice(0, 40)}: ${r.toFixed(2)} (${style.color} on rgb(${bg.slice(0, 3).map(Math.round).join(', ')}))`);
    };
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('[disabled], [aria-disabled="true"], [aria-hidden="true"], svg, canvas, .u-legend')) continue;
      const style = getComputedStyle(el);
      if (style.visibility !== 'visible' || el.getClientRects().length === 0) continue;
      if ((el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement) && el.placeholder && el.value === '') {
        check(el, `placeholder "${el.placeholder}"`, getComputedStyle(el, '::placeholder'));
      }
      const own = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent!.trim()).join(' ').trim();
      if (own) check(el, own, style);
    }
    probe.remove();
    return bad;
  });
}

describe('the dashboard for keyboard and screen-reader users', () => {
  // A quick reaper, so a run with a 1 s stall timeout is found stalled within the test.
  const scene = browserScene({ prefix: 'runtrail-e2e-a11y-', node: 'e2e-a11y', env: { RUNTRAIL_REAPER_INTERVAL_MS: '200' } });
  const post = <T = ApiRun>(path: string, body: unknown): Promise<T> => postJson<T>(scene.server.url, path, body);
  const createRun = (body: object) => post('/runs', { leaseTtlMs: 600_000, ...body });
  const send = (id: string, events: object[]) => post(`/runs/${id}/events`, { events });
  const finish = (id: string, body: object) => post(`/runs/${id}/finish`, body);
  const busy: { id?: string; failed?: string } = {};

  beforeAll(async () => {
    // A run with everything a run page can show in colour: calls ok/failed/retried, one in flight, output at every level, progress, a phase.
    const run = await createRun({ name: 'a11y-busy', labels: { team: 'eval' } });
    await send(run.id, [
      { type: 'phase', data: { name: 'score', status: 'started' } },
      { type: 'call.started', data: { callId: 'c1', label: 'doc 1' } },
      { type: 'call.succeeded', data: { callId: 'c1' } },
      { type: 'call.started', data: { callId: 'c2', label: 'doc 2' } },
      { type: 'call.failed', data: { callId: 'c2', error: 'ValueError: bad doc', willRetry: false } },
      { type: 'call.started', data: { callId: 'c3', label: 'doc 3' } },
      { type: 'log', data: { level: 'info', message: 'scoring 3 docs', stream: 'stdout' } },
      { type: 'log', data: { level: 'warn', message: 'slow answer', stream: 'stdout' } },
      { type: 'log', data: { level: 'error', message: 'Traceback: ValueError', stream: 'stderr' } },
      { type: 'log', data: { level: 'debug', message: 'cache miss' } },
      { type: 'progress', data: { done: 1, total: 3, message: 'scoring' } },
      { type: 'metric', data: { name: 'loss', value: 0.5, step: 1 } },
    ]);
    busy.id = run.id;
    await createRun({ name: 'a11y-child', parentId: run.id });
    const failed = await createRun({ name: 'a11y-failed' });
    await finish(failed.id, { status: 'failed', error: { message: 'no answer in 30 s' } });
    busy.failed = failed.id;
  });

  const open = async (path: string, ready: string) => {
    await scene.page.goto(`${scene.server.url}${path}`);
    await scene.page.getByRole('heading', { name: ready }).waitFor();
  };

  it.each(['light', 'dark'] as const)('shows every text at WCAG AA contrast or better (%s scheme)', async (scheme) => {
    const page = scene.page;
    await page.emulateMedia({ colorScheme: scheme });
    try {
      await open('/', 'Runs');
      await page.getByRole('link', { name: 'a11y-failed' }).waitFor();
      await page.getByTestId('totals').waitFor();
      // The start panel open too: its fields, its help and an input that is not JSON.
      await page.getByRole('button', { name: 'Start run' }).click();
      await page.getByLabel('run input as JSON').fill('{');
      await page.getByText('Not valid JSON').waitFor();
      const list = await lowContrastTexts(page);
      await open(`/runs/${busy.id}`, 'a11y-busy');
      await page.getByRole('log', { name: 'run output' }).getByText('slow answer').waitFor();
      const run = await lowContrastTexts(page);
      await open(`/runs/${busy.failed}`, 'a11y-failed');
      await page.getByTestId('run-error').waitFor();
      expect({ list, run, failed: await lowContrastTexts(page) }).toEqual({ list: [], run: [], failed: [] });
    } finally {
      await page.emulateMedia({ colorScheme: null });
    }
  });

  it('names every button and link on the runs list and a run page starting with the text it shows (a voice-control user says "3 running")', async () => {
    const page = scene.page;
    const parent = await createRun({ name: 'a11y-family' });
    await createRun({ name: 'a11y-family-child', parentId: parent.id });
    await open('/', 'Runs');
    await page.getByRole('link', { name: 'a11y-failed' }).waitFor();
    await waitUntil(async () => /\b1 failed\b/.test((await textNow(page.getByTestId('totals'))) ?? ''), { what: 'the status totals' });
    // A family's fold button ("▾ 1") is on the list too.
    const fold = page.getByRole('button', { name: '1 child run of a11y-family', exact: true });
    await fold.waitFor();
    expect(await fold.getAttribute('aria-expanded')).toBe('true');
    expect(await labelsNotFirstInName(page)).toEqual([]);
    // The pager ("← Newer", "Older →") shows only when there is more than one page: on a second page.
    await open(`/?cursor=${parent.id}`, 'Runs');
    await page.getByRole('link', { name: 'a11y-failed' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'pages of runs' }).getByRole('button').count()).toBe(2);
    expect(await labelsNotFirstInName(page)).toEqual([]);
    await open('/', 'Runs');
    await page.getByRole('link', { name: 'a11y-failed' }).waitFor();
    await fold.click();
    await waitUntil(async () => (await fold.getAttribute('aria-expanded')) === 'false', { what: 'the family to fold' });
    expect(await labelsNotFirstInName(page)).toEqual([]);
    // The status totals are buttons that show "1 failed": saying it clicks it.
    await page.getByTestId('totals').getByRole('button', { name: /^1 failed\b/ }).click();
    await waitUntil(async () => new URL(page.url()).searchParams.get('status') === 'failed', { what: 'saying "1 failed" to list the failed runs' });

    const run = await createRun({ name: 'a11y-names' });
    await send(run.id, [
      { type: 'call.started', data: { callId: 'n1', label: 'doc 1' } },
      { type: 'log', data: { level: 'info', message: 'a line' } },
      { type: 'artifact', data: { name: 'notes.txt', uri: `data:text/plain,${encodeURIComponent('all good')}`, contentType: 'text/plain' } },
    ]);
    await createRun({ name: 'a11y-names-child', parentId: run.id });
    await open(`/runs/${run.id}`, 'a11y-names');
    await page.getByRole('table', { name: 'Child runs (1)' }).getByRole('link', { name: 'a11y-names-child' }).waitFor();
    // An open preview's button shows "Hide".
    await page.getByRole('button', { name: 'Preview notes.txt' }).click();
    await page.getByLabel('contents of notes.txt').waitFor();
    expect(await labelsNotFirstInName(page)).toEqual([]);
  });

  it('tells a screen reader how the run goes (status, stalled, every tenth of progress), not each line of output, event or tick', async () => {
    const page = scene.page;
    const run = await createRun({ name: 'a11y-live', stallTimeoutMs: 1000 });
    await send(run.id, [{ type: 'progress', data: { done: 1, total: 4 } }, { type: 'log', data: { level: 'info', message: 'first line' } }]);
    await open(`/runs/${run.id}`, 'a11y-live');
    const said = page.getByTestId('run-announcement');
    // (With the stall already, on a loaded machine: the page may open more than a second after the progress.)
    await waitUntil(async () => (await textNow(said)).startsWith('Run running, 25% done'), { what: 'the run to be said running' });
    await waitUntil(async () => (await textNow(page.getByTestId('connection'))) === 'live', { what: 'the page to be live' });
    // Output and events arrive as fast as a run makes them: a screen reader reading each one out would say nothing else.
    // (The Console's copy note speaks only when the reader copies the output.)
    expect(await liveRegions(page)).toEqual(['status connection: live', 'status', 'status copy of the output']);
    await send(run.id, [{ type: 'progress', data: { done: 2 } }, { type: 'log', data: { level: 'info', message: 'second line' } }]);
    // As above: the stall may come first.
    await waitUntil(async () => (await textNow(said)).startsWith('Run running, 50% done'), { what: 'half way to be said' });
    // No progress for a second: the server calls it stalled, and the banner counts the time up every second.
    const banner = page.getByTestId('stalled');
    await waitUntil(async () => (await textNow(said)) === 'Run running, 50% done, stalled.', { what: 'the stall to be said', timeoutMs: 15_000 });
    const first = await banner.textContent();
    await waitUntil(async () => (await banner.textContent()) !== first, { what: 'the stall banner to count on' });
    expect(await liveRegions(page)).toEqual(['status connection: live', 'status', 'status copy of the output']);
    await finish(run.id, { status: 'succeeded' });
    await waitUntil(async () => (await textNow(said)) === 'Run succeeded.', { what: 'the end to be said' });
  });

  it('stops every animation when the reader asks for less motion', async () => {
    const page = scene.page;
    const running = () => page.evaluate(() => document.getAnimations().filter((a) => a.playState === 'running').length);
    // The busy run has a call in flight: its spinner turns.
    await open(`/runs/${busy.id}`, 'a11y-busy');
    await page.getByRole('heading', { name: 'In flight' }).waitFor();
    await waitUntil(async () => (await running()) > 0, { what: 'the in-flight spinner to turn' });
    await page.emulateMedia({ reducedMotion: 'reduce' });
    try {
      await waitUntil(async () => (await running()) === 0, { what: 'every animation to stop' });
    } finally {
      await page.emulateMedia({ reducedMotion: null });
    }
  });

  it('keeps the focus on Cancel run after a cancel confirmed from the keyboard, so Tab goes on from there', async () => {
    const page = scene.page;
    const run = await createRun({ name: 'a11y-cancel' });
    await open(`/runs/${run.id}`, 'a11y-cancel');
    const cancel = page.getByRole('button', { name: 'Cancel run' });
    await cancel.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('textbox', { name: 'reason (optional)' }).waitFor();
    await page.keyboard.type('wrong input');
    await page.keyboard.press('Enter');
    await page.getByText('Cancel requested; waiting for the run to stop.').waitFor();
    // Asked once, it cannot be asked again, and says so; the focus did not fall back to the top of the page.
    await waitUntil(() => cancel.evaluate((el) => el === document.activeElement), { what: 'the focus to be back on Cancel run' });
    expect(await cancel.isDisabled()).toBe(true);
    await page.keyboard.press('Enter');
    expect(await page.getByRole('textbox', { name: 'reason (optional)' }).count()).toBe(0);
    await page.keyboard.press('Tab');
    expect(await page.getByRole('button', { name: 'Delete run' }).evaluate((el) => el === document.activeElement)).toBe(true);
  });

  it('shows a cancel reason whole while it is typed: a sentence at 1280 px, a short one on a 390 px phone', async () => {
    const page = scene.page;
    const run = await createRun({ name: 'a11y-cancel-reason' });
    const reasons = { 1280: 'the upstream dataset was corrupted in shard 17, see INC-0042', 390: 'dataset corrupted in shard 17' };
    try {
      for (const [width, reason] of Object.entries(reasons)) {
        await page.setViewportSize({ width: Number(width), height: 900 });
        await open(`/runs/${run.id}`, 'a11y-cancel-reason');
        await page.getByRole('button', { name: 'Cancel run' }).click();
        const box = page.getByRole('textbox', { name: 'reason (optional)' });
        await box.fill(reason);
        // Wider than its box, the text scrolls inside it and its start is out of sight.
        expect(await box.evaluate((el) => el.scrollWidth <= el.clientWidth), `at ${width} px`).toBe(true);
        await page.keyboard.press('Escape');
        await box.waitFor({ state: 'detached' });
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
      await finish(run.id, { status: 'succeeded' });
    }
  });

  it('moves the focus into the new page when a link opens it, and every page title says where the reader is', async () => {
    const page = scene.page;
    const focusedText = () => page.evaluate(() => (document.activeElement as HTMLElement | null)?.innerText?.trim() ?? '');
    await open('/', 'Runs');
    expect(await page.title()).toBe('Runs · runtrail');
    const link = page.getByRole('link', { name: 'a11y-busy' });
    await link.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'a11y-busy' }).waitFor();
    await waitUntil(async () => (await page.title()) === 'running · a11y-busy · runtrail', { what: 'the tab to name the run' });
    // The link that had the focus is gone with the list: the focus is on the new page's main region (a
    // screen reader says where it is), not on the body, and the next Tab goes on from there.
    const mainFocused = () => page.getByRole('main').evaluate((el) => el === document.activeElement);
    await waitUntil(mainFocused, { what: 'the run page to have the focus' });
    await page.keyboard.press('Tab');
    expect(await focusedText()).toBe('← All runs');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    await waitUntil(async () => (await page.title()) === 'Runs · runtrail', { what: 'the tab to say Runs again' });
    await waitUntil(mainFocused, { what: 'the list to have the focus' });
    await page.keyboard.press('Tab');
    expect(await focusedText()).toBe('Start run');
    // The run's children are a table named by its heading, with a header cell per column.
    await open(`/runs/${busy.id}`, 'a11y-busy');
    const children = page.getByRole('table', { name: 'Child runs (1)' });
    await children.getByRole('link', { name: 'a11y-child' }).waitFor();
    expect(await children.getByRole('columnheader').allInnerTexts()).toEqual(['Name', 'Status', 'Duration']);
  });

  it('a link to a run that is not there (deleted, mistyped) says so in its tab and heading, its id kept on a phone\'s screen', async () => {
    // A page of its own: Chromium logs the 404 of the run as a console error.
    const page = await scene.browser.newPage({ viewport: { width: 390, height: 844 } });
    try {
      const id = `gone-${'x'.repeat(120)}`;
      await page.goto(`${scene.server.url}/runs/${id}`);
      await page.getByRole('heading', { name: 'Run not found' }).waitFor();
      expect(await page.title()).toBe('Run not found · runtrail');
      expect(await page.getByRole('alert').textContent()).toBe(`Run ${id} does not exist on this server: it was deleted, or the link is mistyped.`);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    } finally {
      await page.close();
    }
  });

  it('a run\'s tab says its status before its name, so a name of 200 characters does not push the status out of the tab', async () => {
    const name = `nightly-eval-${'x'.repeat(187)}`;
    const run = await createRun({ name });
    await open(`/runs/${run.id}`, name);
    await waitUntil(async () => (await scene.page.title()) === `running · ${name} · runtrail`, { what: 'the tab to say running first' });
    await finish(run.id, { status: 'succeeded' });
    await waitUntil(async () => (await scene.page.title()).startsWith('succeeded · nightly-eval-'), { what: 'the tab to say succeeded first' });
  });

  it('tells a screen reader how many runs match once the filters change, and only then', async () => {
    const page = scene.page;
    await open('/', 'Runs');
    const said = page.getByTestId('filter-result');
    await waitUntil(async () => /^\d+ runs\.$/.test((await textNow(said)) ?? ''), { what: 'the count of all runs' });
    await page.getByRole('searchbox', { name: 'search run names' }).focus();
    await page.keyboard.type('a11y-fail');
    await waitUntil(async () => (await textNow(said)) === '1 run matches.', { what: 'the one match to be said' });
    // A run that starts meanwhile re-counts the totals on the page; the reader, who changed nothing, is not told.
    await createRun({ name: 'a11y-failing-later' });
    await waitUntil(async () => (await textNow(page.getByTestId('totals')))?.startsWith('2 runs match'), { what: 'the totals to count the new run' });
    expect(await textNow(said)).toBe('1 run matches.');
    await page.keyboard.type('-nothing-like-it');
    await waitUntil(async () => (await textNow(said)) === 'No runs match these filters.', { what: 'no match to be said' });
  });

  it('hides and shows a line of an overlaid chart from its legend with the keyboard', async () => {
    const page = scene.page;
    const run = await createRun({ name: 'a11y-chart' });
    await send(run.id, [1, 2, 3].flatMap((step) => [
      { type: 'metric', data: { name: 'accuracy', value: 0.5 + step / 10, step } },
      { type: 'metric', data: { name: 'loss', value: 1 / step, step } },
    ]));
    await open(`/runs/${run.id}`, 'a11y-chart');
    const overlay = page.getByRole('checkbox', { name: 'overlay' });
    await overlay.focus();
    await page.keyboard.press('Space');
    const chart = page.getByRole('figure', { name: 'metrics overlaid' });
    await chart.waitFor();
    // The legend comes next in the Tab order, one checkbox per line, each saying whether its line is drawn.
    await page.keyboard.press('Tab');
    const accuracy = chart.getByRole('checkbox', { name: 'accuracy' });
    expect(await accuracy.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await accuracy.isChecked()).toBe(true);
    await page.keyboard.press('Space');
    await waitUntil(async () => !(await accuracy.isChecked()), { what: 'the accuracy line to be hidden' });
    expect(await chart.getByRole('checkbox', { name: 'loss' }).isChecked()).toBe(true);
    await page.keyboard.press('Enter');
    await waitUntil(() => accuracy.isChecked(), { what: 'the accuracy line to be shown again' });
  });
});
