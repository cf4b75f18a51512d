import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { postJson, restartingScene, textNow, waitUntil } from './harness.js';

/**
 * A queued run held by its handler's concurrency says so on the runs list
 * and on its page, with its place in line on both: not just "queued".
 */
describe('a queued run behind a concurrency limit', () => {
  const scene = restartingScene({ prefix: 'runtrail-web-queued-limit-', node: 'node-a' });

  it('says on the list and on its page which limit holds it, and its place in line; the page also how many run', async () => {
    const handlers = join(scene.dir.path, 'handlers.mjs');
    // Holds its one slot until the server stops it.
    writeFileSync(handlers, "export default { gpu: { handler: (ctx) => new Promise((r) => ctx.signal.addEventListener('abort', () => r())), concurrency: 1 } };\n");
    const server = await scene.start({ args: ['--handlers', handlers] });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await postJson<{ id: string }>(server.url, '/runs', { name: 'gpu', execute: true })).id);
    await waitUntil(
      async () => {
        const answer = (await (await fetch(`${server.url}/api/v1/handlers`)).json()) as { nodes: Array<{ slots?: { runningByHandler: Record<string, number> } }> };
        return answer.nodes[0]?.slots?.runningByHandler.gpu === 1;
      },
      { what: 'node-a to tell one gpu run running' },
    );

    const { page, errors } = await scene.newPage();
    const why = (id: string) => page.locator(`tr[data-run-id="${id}"]`).getByTestId('queued-why');
    const asked: URL[] = [];
    page.on('request', (request) => asked.push(new URL(request.url())));
    await page.goto(`${server.url}/`);
    // Each queued row: which limit holds it and its place, from one read for the whole list; the whole sentence as its title.
    await waitUntil(async () => (await textNow(why(ids[4]!)))?.includes('in line'), { what: 'the list to say why the runs wait, with their places' });
    expect(await textNow(why(ids[1]!))).toBe('waiting: 1 at a time on node-a; 1st in line');
    expect(await textNow(why(ids[3]!))).toBe('waiting: 1 at a time on node-a; 3rd in line');
    expect(await textNow(why(ids[4]!))).toBe('waiting: 1 at a time on node-a; 4th in line');
    expect(await why(ids[3]!).getAttribute('title')).toBe(
      'Queued: the limit of its handler is reached on every node that defines it: gpu runs 1 at a time on node-a (its concurrency), and 1 runs there now. It starts when one of them ends. It is 3rd in line (2 queued runs of it are older).',
    );

    // Not a request per queued row: one read of the queued runs per answer of the handlers.
    const handlersAsked = asked.filter((url) => url.pathname === '/api/v1/handlers').length;
    expect(asked.filter((url) => url.pathname === '/api/v1/runs' && url.searchParams.get('status') === 'queued').length).toBe(handlersAsked);
    expect(asked.filter((url) => url.pathname === '/api/v1/run-counts' && url.searchParams.get('name') === 'gpu')).toEqual([]);

    await page.goto(`${server.url}/runs/${ids[3]}`);
    const note = page.getByTestId('queued-why');
    await waitUntil(async () => /in line/.test((await textNow(note)) ?? ''), { what: 'the run page to say why the run waits, with its place' });
    expect(await textNow(note)).toBe(
      'Queued: the limit of its handler is reached on every node that defines it: gpu runs 1 at a time on node-a (its concurrency), and 1 runs there now. It starts when one of them ends. It is 3rd in line (2 queued runs of it are older).',
    );
    expect(errors).toEqual([]);
    await page.close();
  });
});
