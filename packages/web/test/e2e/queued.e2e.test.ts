import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { postJson, restartingScene, textNow, waitUntil } from './harness.js';

/**
 * A queued run says why it waits: for a free slot on a node that defines
 * its handler, or for a node that defines it at all (then the reaper ends
 * it after queuedOrphanTimeoutMs). A node of concurrency 0 claims nothing,
 * so its runs stay queued however long the test takes.
 */
describe('a queued run', () => {
  const scene = restartingScene({ prefix: 'runtrail-web-queued-', node: 'e2e-queued-node', env: { RUNTRAIL_CONCURRENCY: '0' } });

  it('says it waits for a free slot while a live node defines its handler, and that none does once that node is gone', async () => {
    const handlers = join(scene.dir.path, 'handlers.mjs');
    writeFileSync(handlers, "export default { 'nightly-import': async () => {} };\n");
    let server = await scene.start({ args: ['--handlers', handlers] });
    const demo = await postJson<{ id: string; status: string }>(server.url, '/runs', { name: 'demo-pipeline', execute: true, input: { docs: 4 } });
    const nightly = await postJson<{ id: string; status: string }>(server.url, '/runs', { name: 'nightly-import', execute: true });
    expect([demo.status, nightly.status]).toEqual(['queued', 'queued']);

    const { page, errors } = await scene.newPage();
    const why = (id: string) => page.locator(`tr[data-run-id="${id}"]`).getByTestId('queued-why');
    await page.goto(`${server.url}/`);
    await waitUntil(async () => (await textNow(why(nightly.id))) === 'waiting for a free slot', { what: 'the list to say the run waits for a slot' });
    expect(await textNow(why(demo.id))).toBe('waiting for a free slot');
    // It has no duration yet; the list says how long it has waited, and counts on.
    const queuedFor = page.locator(`tr[data-run-id="${nightly.id}"]`).getByTestId('queued-for');
    const listed = await textNow(queuedFor);
    expect(listed).toMatch(/^queued \d/);
    await waitUntil(async () => (await textNow(queuedFor)) !== listed, { what: 'the list to count the wait on' });
    await page.goto(`${server.url}/runs/${nightly.id}`);
    const note = page.getByTestId('queued-why');
    await waitUntil(async () => (await textNow(note)) !== null, { what: 'the run page to say why the run waits' });
    expect(await textNow(note)).toBe('Queued: a live node defines handler nightly-import; the run waits for a free slot on one.');
    // And its page says so where a duration would be.
    expect(await textNow(page.getByTestId('duration-title'))).toBe('Queued for');
    const waited = await textNow(page.getByTestId('duration'));
    expect(waited).toMatch(/^\d/);
    await waitUntil(async () => (await textNow(page.getByTestId('duration'))) !== waited, { what: 'the run page to count the wait on' });

    // The node that defined nightly-import goes; the one that comes back defines demo-pipeline only.
    server = await scene.restart();
    await page.reload();
    await waitUntil(async () => /no live node defines/.test((await textNow(note)) ?? ''), { what: 'the run page to say no live node defines the handler' });
    // When it ends: queued-orphan.e2e.test.ts.
    expect(await textNow(note)).toMatch(
      /^Queued: no live node defines handler nightly-import\. It starts if a node that defines it comes up; if none does (by|within) .+, it ends failed \/ orphaned/,
    );
    await page.goto(`${server.url}/`);
    await waitUntil(async () => (await textNow(why(nightly.id))) === 'no live node defines nightly-import', { what: 'the list to say no live node defines it' });
    expect(await why(nightly.id).getAttribute('title')).toContain('queuedOrphanTimeoutMs');
    expect(await textNow(why(demo.id))).toBe('waiting for a free slot');

    // Asked once on opening, then at most every 15 s: never once per render or per row.
    const asked: number[] = [];
    page.on('request', (request) => new URL(request.url()).pathname === '/api/v1/handlers' && asked.push(Date.now()));
    await page.clock.install();
    await page.reload();
    // Shown once the answer is in, and the next ask is scheduled from there.
    await waitUntil(async () => (await textNow(why(nightly.id))) !== null, { what: 'the list to say why again' });
    expect(asked).toHaveLength(1);
    await page.clock.fastForward('00:14');
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    expect(asked).toHaveLength(1);
    await page.clock.fastForward('00:02');
    await waitUntil(() => asked.length === 2, { what: 'the list to ask again after 15 s' });
    // Refused connections while the server restarted are the browser's noise; a crash of the page is not.
    expect(errors.filter((e) => e.startsWith('uncaught:'))).toEqual([]);
    await page.close();
  });
});
