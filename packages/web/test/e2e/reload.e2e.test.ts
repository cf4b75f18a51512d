import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, collectConsoleErrors, counters, launchChromium, spawnServer, stopServer, tempDir, waitUntil, type ServerProcess } from './harness.js';

type Counters = { ok: number; failed: number; retries: number };
const NAMES = ['ok', 'failed', 'retries'] as const;

/**
 * Records every value the counters take on the page, including ones
 * replaced before the next check: a MutationObserver keeps each text
 * change's old value. Installed before the page's own scripts, on every
 * (re)load; `__counterValues` is per page load.
 */
function recordCounterValues(): void {
  const w = window as unknown as { __counterValues: Record<string, number[]> };
  w.__counterValues = { ok: [], failed: [], retries: [] };
  const nameOf = (node: Node | null): string | null => {
    const el = node instanceof Element ? node : (node?.parentElement ?? null);
    const id = el?.closest('[data-testid^="counter-"]')?.getAttribute('data-testid');
    return id ? id.slice('counter-'.length) : null;
  };
  const record = (name: string | null, text: string | null): void => {
    if (name === null || text === null || !(name in w.__counterValues)) return;
    const values = w.__counterValues[name]!;
    const value = Number(text);
    if (values.at(-1) !== value) values.push(value);
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === 'characterData') record(nameOf(m.target), m.oldValue);
      else for (const node of m.addedNodes) if (node instanceof Element || node instanceof Text) for (const el of node instanceof Element ? [node, ...node.querySelectorAll('[data-testid^="counter-"]')] : [node]) record(nameOf(el), el.textContent);
    }
    // The value after this batch of changes.
    for (const el of document.querySelectorAll('[data-testid^="counter-"]')) record(nameOf(el), el.textContent);
  }).observe(document, { subtree: true, childList: true, characterData: true, characterDataOldValue: true });
}

/** `n` LLM-style calls from call `start`: every 5th fails once and is retried. */
function callEvents(n: number, start = 0): Array<{ type: string; data: Record<string, unknown> }> {
  const events: Array<{ type: string; data: Record<string, unknown> }> = [];
  for (let i = start; i < start + n; i++) {
    const callId = `c${i}`;
    events.push({ type: 'call.started', data: { callId, label: `Evaluating doc_${i}` } });
    if (i % 5 === 0) {
      events.push({ type: 'call.failed', data: { callId, error: 'rate limited', willRetry: true } });
      events.push({ type: 'call.retried', data: { callId, attempt: 2 } });
    }
    events.push({ type: 'call.succeeded', data: { callId, durationMs: 5 } });
    events.push({ type: 'progress', data: { done: i + 1, total: 1000 } });
  }
  return events;
}

describe('reloading the run page (issue 10: a reload never shows lower numbers)', () => {
  const dir = tempDir('runtrail-web-reload-');
  let server: ServerProcess | null = null;
  let browser: Browser;
  let page: Page;
  let errors: string[];

  const post = async (path: string, body: unknown): Promise<{ id: string; seq: number }> => {
    const res = await fetch(`${server!.url}/api/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { id: string; seq: number };
  };
  const serverCounters = async (id: string): Promise<Counters & { seq: number }> => {
    const run = (await (await fetch(`${server!.url}/api/v1/runs/${id}`)).json()) as { seq: number; snapshot: { counters: Counters } };
    return { ...run.snapshot.counters, seq: run.seq };
  };
  const rendered = (): Promise<Record<string, number[]>> => page.evaluate(() => (window as unknown as { __counterValues: Record<string, number[]> }).__counterValues);

  beforeAll(async () => {
    assertBuilt();
    server = await spawnServer({ dataDir: join(dir.path, 'data'), node: 'e2e-reload' });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    errors = collectConsoleErrors(page);
    await page.addInitScript(recordCounterValues);
  });

  afterAll(async () => {
    await browser?.close();
    await stopServer(server);
    dir.remove();
  });

  it('mid-run and after the end, every rendered counter value of a 1,360-event run never decreases', async () => {
    const { id } = await post('/runs', { name: 'reload-me', leaseTtlMs: 600_000 });
    // 400 calls: about 1,360 events, a backlog of several 64 KiB frames.
    const events = callEvents(400);
    for (let i = 0; i < events.length; i += 500) await post(`/runs/${id}/events`, { events: events.slice(i, i + 500) });
    expect((await serverCounters(id)).seq).toBeGreaterThanOrEqual(1300);

    // Each page load's rendered values, in order; a load's list is read just before it is left.
    const loads: Array<Record<string, number[]>> = [];
    const status = () => page.locator('.run-head').getByTestId('status').textContent();
    const reload = async () => {
      loads.push(await rendered());
      await page.reload();
      await page.getByTestId('counter-ok').waitFor();
    };

    await page.goto(`${server!.url}/runs/${id}`);
    await waitUntil(async () => (await counters(page)).ok === 400, { what: 'the page to show all 400 calls' });

    // Mid-run: calls keep arriving while the page reloads and replays.
    let next = 400;
    let producing = true;
    const producer = (async () => {
      while (producing && next < 600) {
        await post(`/runs/${id}/events`, { events: callEvents(10, next) });
        next += 10;
      }
    })();
    for (let i = 1; i <= 2; i++) {
      await reload();
      await waitUntil(async () => (await counters(page)).ok > 400 + i * 10, { what: 'the page to move on after the reload' });
    }
    producing = false;
    await producer;
    const last = await serverCounters(id);
    await waitUntil(async () => (await counters(page)).ok === last.ok, { what: 'the page to catch up with the producer' });

    // After the end.
    await post(`/runs/${id}/finish`, { status: 'succeeded' });
    await waitUntil(async () => (await status()) === 'succeeded', { what: 'the run to show succeeded' });
    await reload();
    await waitUntil(async () => (await status()) === 'succeeded', { what: 'the ended run to show succeeded after a reload' });
    const final = await serverCounters(id);
    expect(await counters(page)).toEqual({ ok: final.ok, failed: final.failed, retries: final.retries });
    loads.push(await rendered());

    // Every value rendered, in order, across all page loads.
    expect(loads).toHaveLength(4);
    for (const name of NAMES) {
      const values = loads.flatMap((load) => load[name]!);
      for (let i = 1; i < values.length; i++) {
        if (values[i]! < values[i - 1]!) throw new Error(`${name} went from ${values[i - 1]} down to ${values[i]} (values rendered: ${values.join(' ')})`);
      }
    }
    expect(loads.every((load) => load.ok!.length > 0)).toBe(true);
    expect(errors).toEqual([]);
  });
});
