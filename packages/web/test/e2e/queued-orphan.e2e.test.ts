import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HandlersResponse, Run } from '@runtrail/protocol';
import { assertBuilt, launchChromium, postJson, spawnServer, stopServer, tempDir, textNow, waitUntil, type ServerProcess } from './harness.js';

/** The server's queuedOrphanTimeoutMs here: long enough to open the pages in, short enough to wait out. */
const TIMEOUT_MS = 25_000;

/**
 * A queued run whose handler no live node defines ends failed / orphaned
 * queuedOrphanTimeoutMs after the server's reaper found none defining it.
 * The page says at what time, as the server counts it, and the run ends
 * then. A node of concurrency 0 queues the run while it defines the
 * handler; the node that replaces it does not define it.
 */
describe('a queued run no live node can start', () => {
  const dir = tempDir('runtrail-web-queued-orphan-');
  let server: ServerProcess | null = null;
  let browser: Browser;

  beforeAll(async () => {
    assertBuilt();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stopServer(server);
    dir.remove();
  });

  it('says at what time it will end if no node defines its handler by then, and ends then', async () => {
    const dataDir = join(dir.path, 'data');
    const handlers = join(dir.path, 'handlers.mjs');
    writeFileSync(handlers, "export default { 'nightly-import': async () => {} };\n");
    const node = 'e2e-queued-orphan-node';
    server = await spawnServer({ dataDir, node, env: { RUNTRAIL_CONCURRENCY: '0' }, args: ['--handlers', handlers] });
    const queued = await postJson<{ id: string; status: string }>(server.url, '/runs', { name: 'nightly-import', execute: true });
    expect(queued.status).toBe('queued');
    const port = server.port;
    await stopServer(server);
    server = await spawnServer({ dataDir, node, port, env: { RUNTRAIL_QUEUED_ORPHAN_TIMEOUT_MS: String(TIMEOUT_MS), RUNTRAIL_REAPER_INTERVAL_MS: '200' } });
    const url = server.url;

    // What the server says: the moment its reaper started counting, and when the run ends.
    const unclaimable = await waitUntil(
      async () => (await getJson<HandlersResponse>(url, '/handlers')).unclaimable.find((u) => u.handler === 'nightly-import'),
      { what: "the server's reaper to find no live node defining nightly-import" },
    );
    expect(unclaimable.endsAt).toBe(unclaimable.undefinedSince + TIMEOUT_MS);

    const runPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await runPage.goto(`${url}/runs/${queued.id}`);
    const at = await localTime(runPage, unclaimable.endsAt);
    const note = runPage.getByTestId('queued-why');
    await waitUntil(async () => (await textNow(note))?.includes(' by ') === true, { what: 'the run page to say when the run ends' });
    expect(await textNow(note)).toMatch(
      new RegExp(
        `^Queued: no live node defines handler nightly-import\\. It starts if a node that defines it comes up; if none does by ${escaped(at)}, it ends failed / orphaned ` +
          `\\(the server's queuedOrphanTimeoutMs, 25\\ss, from when it found none\\)\\.$`,
      ),
    );
    // The list says it too, in the line's title.
    const listPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await listPage.goto(`${url}/`);
    const why = listPage.locator(`tr[data-run-id="${queued.id}"]`).getByTestId('queued-why');
    await waitUntil(async () => (await textNow(why)) === 'no live node defines nightly-import', { what: 'the list to say no live node defines it' });
    expect(await why.getAttribute('title')).toContain(`if none does by ${at}, it ends failed / orphaned`);

    // And the run ends then: not before, and as of the same count.
    const ended = await waitUntil(
      async () => {
        const run = await getJson<Run>(url, `/runs/${queued.id}`);
        return run.status === 'queued' ? undefined : run;
      },
      { what: 'the run to end', timeoutMs: TIMEOUT_MS + 30_000 },
    );
    expect(ended.status).toBe('failed');
    expect(ended.error?.kind).toBe('orphaned');
    expect(ended.error?.message).toContain(`no live node has defined handler "nightly-import" since ${new Date(unclaimable.undefinedSince).toISOString()}`);
    expect(ended.finishedAt).toBeGreaterThanOrEqual(unclaimable.endsAt);
    await waitUntil(async () => (await textNow(runPage.locator('.run-head').getByTestId('status'))) === 'failed', { what: 'the run page to show it failed' });
    expect(await note.count()).toBe(0);
    await runPage.close();
    await listPage.close();
  });
});

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function getJson<T>(serverUrl: string, path: string): Promise<T> {
  const res = await fetch(`${serverUrl}/api/v1${path}`);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** A moment as the page writes a time with its zone ("14:05:09 UTC"), in the browser's own locale and zone. */
function localTime(page: Page, ts: number): Promise<string> {
  return page.evaluate((t) => {
    const time = new Intl.DateTimeFormat(undefined, { hourCycle: 'h23', hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(t);
    const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' }).formatToParts(t).find((p) => p.type === 'timeZoneName')?.value ?? '';
    return `${time} ${zone}`;
  }, ts);
}
