import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';

export { tempDir, waitUntil } from '@runtrail/test-support';

/**
 * What the dashboard's end-to-end tests share: the real `runtrail` binary in
 * a child process and Debian's Chromium driven by playwright-core; waits
 * are conditions with deadlines (`waitUntil`), never sleeps.
 */

export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const cliMain = `${repoRoot}packages/cli/dist/main.js`;
const webIndex = `${repoRoot}packages/web/dist/index.html`;
export const screenshotsDir = `${repoRoot}docs/screenshots`;

/** Screenshots for the README are rewritten only on request, so a test run does not dirty the tree. */
export const writeScreenshots = process.env.RUNTRAIL_SCREENSHOTS === '1';

export function assertBuilt(): void {
  for (const [file, what] of [
    [cliMain, 'the CLI'],
    [webIndex, 'the dashboard'],
  ] as const) {
    if (!existsSync(file)) {
      throw new Error(`${what} is not built (${file} missing); run \`npm run build\` (npm test does it first)`);
    }
  }
}

export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  exited: Promise<number | null>;
}

/** `runtrail serve` on 127.0.0.1; resolves once it says where it listens. */
export async function spawnServer(options: {
  dataDir: string;
  node: string;
  port?: number;
  env?: Record<string, string>;
  /** More `runtrail serve` flags (`--handlers FILE`). */
  args?: readonly string[];
}): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [
      cliMain,
      'serve',
      '--port',
      String(options.port ?? 0),
      '--data-dir',
      options.dataDir,
      '--node',
      options.node,
      '--log-level',
      'warn',
      ...(options.args ?? []),
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUNTRAIL_LOG_LEVEL: 'warn', ...options.env } },
  );
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  let url: string;
  try {
    url = await waitUntil(
      () => {
        if (gone) throw new Error(`runtrail serve exited early:\n${out}`);
        return /runtrail serving on (http:\/\/\S+)/.exec(out)?.[1];
      },
      { what: 'the server to listen', timeoutMs: 20_000 },
    );
  } catch (err) {
    // A server that never said where it listens is nobody's to stop: without this it outlives the test run.
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
    }
    throw err;
  }
  return { url, port: Number(new URL(url).port), child, output: () => out, exited };
}

/** POST `body` as JSON to the server's API at `path` (after /api/v1); a refusal throws with its status and body. */
export async function postJson<T>(serverUrl: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${serverUrl}/api/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function stopServer(server: ServerProcess | null, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill(signal);
  await server.exited;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** Everything the page logged as an error or threw; the dashboard must leave this empty. */
export function collectConsoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  return errors;
}

/**
 * The element's text as it is now, or null when it is not on the page: one
 * read, no auto-wait. Inside waitUntil the deadline is waitUntil's; a short
 * auto-wait per probe failed every probe in a row when a busy machine slowed
 * the browser down.
 */
export async function textNow(locator: Locator): Promise<string | null> {
  return (await locator.allTextContents())[0] ?? null;
}

export async function counters(page: Page): Promise<{ ok: number; failed: number; retries: number }> {
  const read = async (name: string) => Number(await page.getByTestId(`counter-${name}`).textContent());
  return { ok: await read('ok'), failed: await read('failed'), retries: await read('retries') };
}

/**
 * Save what the page shows for the README (only when asked, see
 * writeScreenshots): the view, the whole page (`fullPage`), or one part of
 * it (`of`, e.g. a panel).
 */
export async function screenshot(page: Page, name: string, options: { fullPage?: boolean; height?: number; of?: Locator } = {}): Promise<void> {
  if (!writeScreenshots) return;
  mkdirSync(screenshotsDir, { recursive: true });
  const viewport = page.viewportSize();
  if (options.height !== undefined && viewport) await page.setViewportSize({ ...viewport, height: options.height });
  const path = `${screenshotsDir}/${name}.png`;
  if (options.of) await options.of.screenshot({ path });
  else await page.screenshot({ path, fullPage: options.fullPage ?? false });
  if (options.height !== undefined && viewport) await page.setViewportSize(viewport);
}

/** The run page's progress in percent, from the bar's value. */
export async function progressPercent(page: Page): Promise<number> {
  return Number(await page.getByLabel('run progress').evaluateAll((bars) => bars[0]?.getAttribute('value') ?? 0));
}

/** Whether the element is laid out wholly within the viewport's width (not cut off at either side). */
export async function withinViewport(page: Page, locator: Locator): Promise<boolean> {
  const box = await locator.boundingBox();
  const width = page.viewportSize()!.width;
  return box !== null && box.x >= 0 && box.x + box.width <= width + 0.5;
}

/** What restartingScene starts: read its fields inside tests (they exist once beforeAll ran). */
export interface RestartingScene {
  /** Made before the tests; every server of the scene serves `data` in it, so one that comes back finds the runs of the one before. */
  readonly dir: { path: string };
  readonly browser: Browser;
  /** The server up now; reading it while none is up throws. */
  readonly server: ServerProcess;
  /**
   * Start the scene's server (with `args`, none by default): the first on a
   * free port, each later one on the port of the one before, so the pages
   * open on it find it again.
   */
  start(options?: { args?: readonly string[] }): Promise<ServerProcess>;
  /** Stop the server up now: SIGTERM by default, SIGKILL to end it as a crash would. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stop the server and start the next on its port. */
  restart(options?: { signal?: NodeJS.Signals; args?: readonly string[] }): Promise<ServerProcess>;
  /** A 1280×900 page and its console errors (collectConsoleErrors); closed with the browser. */
  newPage(): Promise<{ page: Page; errors: string[] }>;
}

/**
 * A data dir of its own, Chromium, and a `runtrail serve` that the tests of
 * one describe block start, stop and start again: the scene owns whichever
 * server is up and stops it after them, also when a test failed halfway
 * (registers beforeAll/afterAll). Every server gets the same node name and
 * env, as one node restarting would.
 */
export function restartingScene(options: { prefix: string; node: string; env?: Record<string, string> }): RestartingScene {
  // Made in beforeAll, not when the describe block is read: a block whose tests are all filtered out
  // (`vitest -t`) runs no hooks, and a dir made up front was left behind.
  let made: { path: string; remove(): void } | null = null;
  let server: ServerProcess | null = null;
  let port = 0;
  let browser: Browser | null = null;
  beforeAll(async () => {
    assertBuilt();
    made = tempDir(options.prefix);
    browser = await launchChromium();
  });
  afterAll(async () => {
    try {
      await browser?.close();
    } finally {
      try {
        await stopServer(server);
      } finally {
        made?.remove();
        made = null;
      }
    }
  });
  const started = <T>(value: T | null, what: string): T => {
    if (value === null) throw new Error(`restartingScene: no ${what} up now (read it inside a test, after start())`);
    return value;
  };
  const dir = {
    get path() {
      return started(made, 'temp dir').path;
    },
  };
  const start = async (startOptions: { args?: readonly string[] } = {}): Promise<ServerProcess> => {
    if (server) throw new Error(`restartingScene: a server is up already on port ${server.port}; stop() it first`);
    server = await spawnServer({
      dataDir: `${dir.path}/data`,
      node: options.node,
      port,
      ...(options.env ? { env: options.env } : {}),
      ...(startOptions.args ? { args: startOptions.args } : {}),
    });
    port = server.port;
    return server;
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const stopping = server;
    server = null;
    await stopServer(stopping, signal);
  };
  return {
    dir,
    get browser() {
      return started(browser, 'browser');
    },
    get server() {
      return started(server, 'server');
    },
    start,
    stop,
    async restart(restartOptions = {}) {
      await stop(restartOptions.signal);
      return start(restartOptions.args ? { args: restartOptions.args } : {});
    },
    async newPage() {
      const page = await started(browser, 'browser').newPage({ viewport: { width: 1280, height: 900 } });
      return { page, errors: collectConsoleErrors(page) };
    },
  };
}

/** What browserScene starts: read its fields inside tests (they exist once beforeAll ran). */
export interface BrowserScene {
  readonly dir: { path: string };
  readonly server: ServerProcess;
  readonly browser: Browser;
  readonly page: Page;
  /** The page's console errors (collectConsoleErrors). */
  readonly errors: string[];
}

/**
 * A `runtrail serve` in a data dir of its own and a 1280×900 Chromium page,
 * for the tests of one describe block whose server stays up: a
 * restartingScene started before them, stopped and removed after them
 * (registers beforeAll/afterAll).
 */
export function browserScene(options: { prefix: string; node: string; env?: Record<string, string> }): BrowserScene {
  const scene = restartingScene(options);
  let opened: { page: Page; errors: string[] } | null = null;
  beforeAll(async () => {
    await scene.start();
    opened = await scene.newPage();
  });
  const page = (): { page: Page; errors: string[] } => {
    if (opened === null) throw new Error('browserScene: no page yet (read it inside a test)');
    return opened;
  };
  return {
    dir: scene.dir,
    get server() {
      return scene.server;
    },
    get browser() {
      return scene.browser;
    },
    get page() {
      return page().page;
    },
    get errors() {
      return opened?.errors ?? [];
    },
  };
}
