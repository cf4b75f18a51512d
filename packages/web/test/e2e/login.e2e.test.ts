import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  collectConsoleErrors,
  counters,
  launchChromium,
  spawnServer,
  stopServer,
  tempDir,
  waitUntil,
  type ServerProcess,
} from './harness.js';

/**
 * Issue 15, item 7, in a real browser against a server with auth ON: a
 * login with a token (kept in session storage), "your token cannot do
 * this" instead of broken buttons, and a shared link `/runs/:id?token=…`
 * that shows that run live, read-only, and nothing else.
 */
const ADMIN = 'e2e-admin-token-0123456789abcdef';
const dir = tempDir('runtrail-e2e-login-');
let server: ServerProcess | null = null;
let browser: Browser;
let errors: string[] = [];

const api = async (method: string, path: string, token: string, body?: unknown) => {
  const res = await fetch(`${server!.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? { 'x-runtrail-client': 'e2e' } : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  return res.status === 204 ? null : await res.json();
};

async function freshPage(): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  errors = collectConsoleErrors(page);
  return page;
}

beforeAll(async () => {
  assertBuilt();
  server = await spawnServer({ dataDir: join(dir.path, 'data'), node: 'e2e-login', env: { RUNTRAIL_ADMIN_TOKEN: ADMIN } });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await stopServer(server);
  dir.remove();
});

describe('the dashboard with auth on', () => {
  it('asks for a token, refuses a wrong one, logs in with a viewer token and says what it cannot do', async () => {
    const viewer = await api('POST', '/api/v1/tokens', ADMIN, { name: 'alice', scope: 'viewer' });
    const run = await api('POST', '/api/v1/runs', ADMIN, { name: 'nightly-eval' });
    const page = await freshPage();
    await page.goto(`${server!.url}/`);
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    // The page asks for one thing: the box has the focus, to paste into at once, from the keyboard too.
    await waitUntil(() => page.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'token'), { what: 'the token box to have the focus' });
    expect(await page.title()).toBe('Log in · runtrail');

    await page.getByLabel('token').fill('not-a-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('This server does not accept that token.').waitFor();

    await page.getByLabel('token').fill(viewer.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    expect(await page.getByTestId('identity').textContent()).toBe('alice (viewer)');
    expect(await page.evaluate(() => window.sessionStorage.getItem('runtrail.token'))).toBe(viewer.token);
    await page.getByRole('link', { name: 'nightly-eval' }).waitFor();
    expect(await page.getByRole('button', { name: 'Start run' }).isDisabled()).toBe(true);
    await page.getByText('Your token cannot do this: it is a viewer token; this needs a producer token.').waitFor();

    await page.getByRole('link', { name: 'nightly-eval' }).click();
    await page.getByRole('heading', { name: 'nightly-eval' }).waitFor();
    await page.getByTestId('cannot').waitFor();
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    // Live for a viewer: a counter moves when the producer reports.
    await api('POST', `/api/v1/runs/${run.id}/events`, ADMIN, { events: [{ type: 'call.started', data: { callId: 'c1', label: 'doc 1' } }, { type: 'call.succeeded', data: { callId: 'c1' } }] });
    await waitUntil(async () => (await counters(page)).ok === 1, { what: 'the OK counter to reach 1' });

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    expect(await page.evaluate(() => window.sessionStorage.getItem('runtrail.token'))).toBeNull();
    expect(errors.filter((e) => !/401|403/.test(e))).toEqual([]);
  });

  it('a token revoked while a live run is open: the page says so and offers to log in again, never a silent "ended"', async () => {
    const viewer = await api('POST', '/api/v1/tokens', ADMIN, { name: 'bob', scope: 'viewer' });
    const run = await api('POST', '/api/v1/runs', ADMIN, { name: 'watched-eval', leaseTtlMs: 600_000 });
    const page = await freshPage();
    await page.goto(`${server!.url}/`);
    await page.getByLabel('token').fill(viewer.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: 'watched-eval' }).waitFor();
    await page.getByText('live', { exact: true }).waitFor();

    await api('DELETE', `/api/v1/tokens/${viewer.id}`, ADMIN);
    const alert = page.getByTestId('stream-problem');
    await alert.waitFor();
    expect(await alert.textContent()).toBe('The page stopped following the run: the token this tab had is not valid any more (expired or revoked). Log in again');
    await alert.getByRole('button', { name: 'Log in again' }).click();
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    expect(errors.filter((e) => !/401|403/.test(e))).toEqual([]);
  });

  it('a page opened with a run token shows that run live and nothing else', async () => {
    const producer = await api('POST', '/api/v1/tokens', ADMIN, { name: 'ci', scope: 'producer' });
    const shared = await api('POST', '/api/v1/runs', producer.token, { name: 'shared-run' });
    const other = await api('POST', '/api/v1/runs', producer.token, { name: 'private-run', input: { secret: 'do not leak' } });
    const { token } = await api('POST', `/api/v1/runs/${shared.id}/tokens`, producer.token, { ttlSeconds: 600 });

    const page = await freshPage();
    await page.goto(`${server!.url}/runs/${shared.id}?token=${encodeURIComponent(token)}`);
    await page.getByRole('heading', { name: 'shared-run' }).waitFor();
    // The token left the address bar at once.
    expect(new URL(page.url()).search).toBe('');
    expect(await page.getByTestId('identity').textContent()).toBe('read-only link to one run');
    await page.getByTestId('cannot').waitFor();
    expect(await page.getByRole('button', { name: /Cancel run|Delete run|Retry/ }).count()).toBe(0);

    await api('POST', `/api/v1/runs/${shared.id}/events`, producer.token, {
      events: [{ type: 'call.started', data: { callId: 'c1', label: 'doc 1' } }, { type: 'call.succeeded', data: { callId: 'c1' } }],
    });
    await waitUntil(async () => (await counters(page)).ok === 1, { what: 'the shared run to update live' });
    // Its children, live: before, the page could not list them (403) and showed none.
    await api('POST', '/api/v1/runs', producer.token, { name: 'shared-child', parentId: shared.id });
    await page.getByRole('heading', { name: 'Child runs (1)' }).waitFor();
    await page.getByRole('link', { name: 'shared-child' }).first().waitFor();

    // A write run token (a subprocess's) is not called read-only.
    const writing = await api('POST', `/api/v1/runs/${shared.id}/tokens`, producer.token, { ttlSeconds: 600, write: true });
    const writer = await freshPage();
    await writer.goto(`${server!.url}/runs/${shared.id}?token=${encodeURIComponent(writing.token)}`);
    await writer.getByRole('heading', { name: 'shared-run' }).waitFor();
    expect(await writer.getByTestId('identity').textContent()).toBe('link to one run that may add events and artifacts to it');

    // Another run: refused; the runs list: not offered.
    await page.goto(`${server!.url}/runs/${other.id}`);
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toMatch(/run token reads only its own run/);
    expect(await page.content()).not.toContain('do not leak');
    await page.goto(`${server!.url}/`);
    await page.getByText('its token cannot list runs').waitFor();
    expect(await page.content()).not.toContain('private-run');
    await page.getByRole('link', { name: 'Open that run' }).click();
    await page.getByRole('heading', { name: 'shared-run' }).waitFor();
  });
});
