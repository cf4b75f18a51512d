import { beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { browserScene, textNow, waitUntil } from './harness.js';

/**
 * The dashboard runs under Trusted Types (`require-trusted-types-for
 * 'script'`): no string ever reaches an HTML or script sink (innerHTML,
 * script src, eval), so even a producer's text that slipped past rendering
 * could not become markup or script. Every page is opened and used with
 * its `securitypolicyviolation` events and console errors collected, and
 * none may appear; a last check proves the policy is in force at all. The
 * API docs page, whose third-party UI cannot work under Trusted Types, is
 * served without them and must work too.
 */
describe('the dashboard works under Trusted Types', () => {
  const scene = browserScene({ prefix: 'runtrail-trusted-types-e2e-', node: 'e2e-trusted-types' });
  const violations: string[] = [];

  beforeAll(async () => {
    await scene.page.exposeFunction('__reportViolation', (text: string) => violations.push(text));
    await scene.page.addInitScript(() => {
      document.addEventListener(
        'securitypolicyviolation',
        (e) => void (window as unknown as { __reportViolation(t: string): void }).__reportViolation(`${e.effectiveDirective} ${e.blockedURI} ${e.sample}`),
        true,
      );
    });
  });

  it('the runs list, a run page with events, artifacts and its log, and the API docs page violate no policy and log no error', async () => {
    const { page, server } = scene;
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'typed-run', labels: { suite: 'tt' }, input: { docs: ['a', 'b'] } });
    run.phase('evaluate');
    await run.call('Evaluating doc a', async () => 'ok');
    await run.call('Evaluating doc b', async () => 'ok');
    run.progress(2, 4, 'half way');
    run.metric('loss', 0.7, 0);
    run.metric('loss', 0.4, 1);
    run.count('tokens', 120);
    run.meta({ model: 'small' });
    run.log('loading <b>markup</b> as text');
    run.log('a warning', 'warn');
    run.event('artifact', { name: 'linked.json', uri: `data:application/json,${encodeURIComponent('{"a":1}')}`, contentType: 'application/json' });
    await run.artifact('notes.md', '# Notes\n\n<script>alert(1)</script> and **bold** and [a link](https://example.com)\n');
    await run.artifact('scores.csv', 'model,score\nsmall,0.81\n');
    await run.artifact('summary.json', '{"accuracy":0.91}');
    await run.artifact('pic.svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="teal"/></svg>'));
    await run.artifact('output.log', 'line one\n\u001b[32mgreen\u001b[0m line two\n', { contentType: 'text/plain; charset=utf-8' });
    await client.createRun({ name: 'typed-child', parentId: run.id });

    await page.goto(`${server.url}/`);
    await page.getByRole('link', { name: 'typed-run' }).waitFor();
    await page.getByLabel('filter by labels (key=value, comma separated)').fill('suite=tt');
    await waitUntil(() => new URL(page.url()).searchParams.get('label') === 'suite=tt', { what: 'the label filter to apply' });

    await page.getByRole('link', { name: 'typed-run' }).click();
    await page.getByRole('heading', { name: 'typed-run', exact: true }).waitFor();
    await page.getByRole('heading', { name: 'Artifacts (6)' }).waitFor();
    await page.getByLabel('contents of notes.md').getByRole('heading', { name: 'Notes' }).waitFor();
    await page.getByRole('table', { name: 'contents of scores.csv' }).waitFor();
    await waitUntil(() => page.getByRole('img', { name: 'pic.svg' }).evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 40), {
      what: 'the SVG preview',
    });
    await page.getByRole('button', { name: 'preview linked.json' }).click();
    await page.getByLabel('contents of linked.json').waitFor();
    await waitUntil(async () => (await textNow(page.locator('#console-title'))) === 'Console (2 lines)', { what: 'the console’s two lines' });
    // A producer's markup is shown as text (in the console and the event log), never parsed.
    await page.getByText('loading <b>markup</b> as text').first().waitFor();
    expect(await page.locator('main b', { hasText: 'markup' }).count()).toBe(0);
    await run.succeed();
    await page.getByText('succeeded', { exact: true }).first().waitFor();

    expect(violations).toEqual([]);
    expect(scene.errors).toEqual([]);

    // The API docs page (Swagger UI) sets innerHTML from strings: it is served without Trusted Types, and works.
    const docsErrors: string[] = [];
    // Any error counts, a 404 of /favicon.ico included (the page names its icon, as the dashboard does).
    page.on('console', (message) => {
      if (message.type() === 'error') docsErrors.push(`${message.text()} (${message.location().url})`);
    });
    await page.goto(`${server.url}/api/docs`);
    await page.getByRole('heading', { name: /runtrail/ }).first().waitFor();
    // An operation opened shows its description, rendered from Markdown.
    await page.locator('.opblock-summary').first().click();
    await page.locator('.opblock-body').first().waitFor();
    expect(violations).toEqual([]);
    expect(docsErrors).toEqual([]);
  });

  it('the policy is in force: a string assigned to innerHTML on a dashboard page is refused', async () => {
    const { page, server } = scene;
    await page.goto(`${server.url}/`);
    const outcome = await page.evaluate(() => {
      try {
        document.createElement('div').innerHTML = '<b>x</b>';
        return 'assigned';
      } catch (err) {
        return (err as Error).name;
      }
    });
    expect(outcome).toBe('TypeError');
    await waitUntil(() => violations.some((v) => v.startsWith('require-trusted-types-for')), { what: 'the refusal reported as a violation' });
  });
});
