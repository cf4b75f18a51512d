import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import {
  assertBuilt,
  collectConsoleErrors,
  launchChromium,
  repoRoot,
  spawnServer,
  stopServer,
  tempDir,
  textNow,
  waitUntil,
  withinViewport,
  type ServerProcess,
} from './harness.js';

/**
 * The run page answers "what was it given, what did it produce, what failed
 * and why" (issue 19 items 1-3) and shows what a run stored (issue 16 item
 * 5): real `runtrail exec` runs of real Python scripts, a real server,
 * Debian's Chromium at 1280 px and at a phone's 390 px.
 */

const cli = `${repoRoot}packages/cli/dist/main.js`;

const TRAIN = `
import sys
print("epoch 1")
print("    loss: 0.91")
print("WARNING: learning rate is high", file=sys.stderr)
for i in range(90):
    print(f"step {i:03d} ok")
def load(path):
    raise ValueError(f"bad row 7 in {path}")
def main():
    load("data.csv")
main()
`;

/** Hangs without a word: its idle timeout stops it. */
const HANG = `
import time
print("waiting on the API...", flush=True)
time.sleep(60)
`;

/** Complains 60 times on stderr, then fails: more than a run error keeps. */
const NOISY = `
import sys
for i in range(60):
    print(f"warn {i:02d}: retrying connection to db-{i % 3}", file=sys.stderr)
sys.exit(2)
`;

/** Writes seven artifacts into out/ once the file "go" exists, printing a line every 50 ms while it waits. */
const RENDER = `
import json, os, struct, sys, time, wave, zlib
n = 0
while not os.path.exists("go"):
    n += 1
    if n > 1200:
        sys.exit("no go within 60 s: the test that started this is gone")
    print(f"waiting for go ({n})", flush=True)
    time.sleep(0.05)
os.makedirs("out", exist_ok=True)
def write(name, data):
    with open(os.path.join("out", name), "wb") as f:
        f.write(data)
    time.sleep(0.02)
write("01_input.txt", b"hello\\n  indented line\\n")
write("02_result.json", json.dumps({"score": 0.93, "labels": ["cat", "dog"]}).encode())
write("03_report.md", b"""# Report

Some **bold**, *emphasis* and \`code\`.

- first point
- second point

[safe link](https://example.com/docs) and [bad link](javascript:alert(1))

<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">
""")
write("04_table.csv", b'name,score\\n"Smith, J",0.9\\nLee,0.8\\n')
def png(w, h):
    raw = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * w for _ in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
write("05_plot.png", png(3, 2))
with wave.open(os.path.join("out", "06_tone.wav"), "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"\\x00\\x00" * 4000)
time.sleep(0.02)
write("07_model.bin", bytes(range(256)))
print("rendered 7 files")
`;

interface Cli {
  done: Promise<{ code: number | null; stderr: string }>;
  stderr(): string;
}

/** CLI processes still running; a failed test must not leave them behind. */
const started = new Set<ChildProcess>();

function runtrail(args: string[], options: { cwd: string; env?: Record<string, string> }): Cli {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: options.cwd,
    env: { ...process.env, RUNTRAIL_URL: '', RUNTRAIL_TOKEN: '', RUNTRAIL_DATA_DIR: '', ...options.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  started.add(child);
  const done = once(child, 'exit').then(([code]) => {
    started.delete(child);
    return { code: code as number | null, stderr };
  });
  return { done, stderr: () => stderr };
}

const runIdOf = (stderr: string) => /runtrail: run (\S+) on /.exec(stderr)?.[1];

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Whether the page scrolls sideways (it must not, at any width). */
function scrollsSideways(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
}

const WIDTHS = [1280, 390] as const;

describe('the run page: context, failures, console and artifacts', () => {
  const dir = tempDir('runtrail-run-page-e2e-');
  const dataDir = join(dir.path, 'data');
  const work = join(dir.path, 'work');
  let server: ServerProcess | null = null;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let client: RuntrailClient;
  const ids: { train?: string; sdk?: string } = {};
  const probed404s: string[] = [];

  beforeAll(async () => {
    assertBuilt();
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'train.py'), TRAIN);
    writeFileSync(join(work, 'render.py'), RENDER);
    // With no server answering, `runtrail exec` runs embedded and keeps the run, and its
    // full output log, in the data dir; the server started on it afterwards shows both.
    const nobody = await freePort();
    const train = await runtrail(['exec', '--data-dir', dataDir, '--name', 'train', '--label', 'team=ml', '--quiet', '--', 'python3', '-u', 'train.py'], {
      cwd: work,
      env: { RUNTRAIL_PORT: String(nobody) },
    }).done;
    expect(train.code, train.stderr).toBe(1);
    ids.train = runIdOf(train.stderr);
    server = await spawnServer({ dataDir, node: 'e2e-run-page' });
    client = new RuntrailClient({ url: server.url });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    errors = collectConsoleErrors(page);
    // The console asks the server whether it has a run's log; for a log on another host the
    // answer is a 404 (which the page explains), and Chromium logs every 404 it loads.
    page.on('console', (message) => {
      if (message.type() === 'error' && /\/api\/v1\/runs\/[^/]+\/log$/.test(message.location().url)) probed404s.push(message.location().url);
    });
  });

  afterAll(async () => {
    // SIGTERM: runtrail exec stops its command's whole group before it exits.
    await Promise.all([...started].map((child) => (child.kill('SIGTERM'), once(child, 'exit'))));
    await browser?.close();
    await stopServer(server);
    dir.remove();
  });

  it('a failed exec run: its command, exit code, host, duration, input and labels up front; the exception and indented traceback in its error', async () => {
    await page.goto(`${server!.url}/runs/${ids.train}`);
    await page.getByRole('heading', { name: 'train', exact: true }).waitFor();
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      const context = page.getByRole('region', { name: 'Context and results' });
      expect(await context.getByTestId('exec-command').textContent()).toBe('python3 -u train.py');
      expect(await context.getByTestId('exec-exit').textContent()).toBe('exit code 1');
      expect(await context.getByTestId('exec-host').textContent()).toBe(hostname());
      expect(await context.getByTestId('exec-duration').textContent()).toMatch(/^\d+(\.\d)?\s(ms|s)$/);
      expect(await context.getByTestId('run-labels').textContent()).toBe('Labelsteam=ml');
      const input = await context.getByLabel('Input as JSON').textContent();
      expect(JSON.parse(input!)).toEqual({ command: 'python3', args: ['-u', 'train.py'], cwd: work });
      expect(input).toContain('\n  "command": "python3",');
      expect(await context.getByText('No output.').isVisible()).toBe(true);
      // Up front: above the counters and the progress.
      expect((await context.boundingBox())!.y).toBeLessThan((await page.getByRole('region', { name: 'Progress' }).boundingBox())!.y);

      const error = page.getByTestId('run-error');
      expect(await error.locator('.error-head').textContent()).toBe('python3 -u train.py exited with code 1: ValueError: bad row 7 in data.csv');
      // Said once: the last error panel points to it instead of printing it again.
      expect(await page.getByTestId('last-error-is-run-error').textContent()).toBe("The run's own error, shown at the top.");
      expect(await page.getByRole('region', { name: 'Last error' }).textContent()).not.toContain('ValueError');
      // Wrapped between words on a phone ("ValueError", not "Va" and "lueError" on two lines).
      expect(await error.locator('.error-head').evaluate((el) => getComputedStyle(el).wordBreak)).toBe('normal');
      const traceback = error.getByLabel('run error details');
      const lines = (await traceback.textContent())!.split('\n');
      expect(lines[0]).toBe('last 9 lines of stderr:');
      expect(lines.slice(1)).toEqual([
        'WARNING: learning rate is high',
        'Traceback (most recent call last):',
        expect.stringMatching(/^ {2}File ".*train\.py", line 12, in <module>$/),
        '    main()',
        expect.stringMatching(/^ {2}File ".*train\.py", line 11, in main$/),
        '    load("data.csv")',
        expect.stringMatching(/^ {2}File ".*train\.py", line 9, in load$/),
        '    raise ValueError(f"bad row 7 in {path}")',
        'ValueError: bad row 7 in data.csv',
      ]);
      // Indentation is drawn, not only kept in the text.
      expect(await traceback.evaluate((el) => getComputedStyle(el).whiteSpace)).toBe('pre-wrap');
      expect(await withinViewport(page, traceback)).toBe(true);
      expect(await scrollsSideways(page)).toBe(false);
      // Collapsible: the details fold away and come back.
      await error.locator('summary').click();
      await traceback.waitFor({ state: 'hidden' });
      await error.locator('summary').click();
      await traceback.waitFor({ state: 'visible' });
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("the console shows the output as printed: stderr marked, indentation kept, searchable; the full log downloads byte for byte", async () => {
    const console = page.getByRole('log', { name: 'run output' });
    await console.locator('.console-line').first().waitFor();
    const totalLines = async () => Number(/\((\d+) lines\)/.exec((await page.getByRole('heading', { name: /^Console/ }).textContent()) ?? '')?.[1]);
    /**
     * The line with `text`, drawn: the Console draws only the lines in and
     * near its view, so it is scrolled down from the top until the line is
     * drawn, then the line to the middle of the view (at the edge of what is
     * drawn, a re-measure of the lines around it could take it off the page).
     */
    const lineWith = async (text: string) => {
      await console.evaluate((el) => el.scrollTo({ top: 0 }));
      await waitUntil(
        () =>
          console.evaluate((el, want) => {
            const line = [...el.querySelectorAll('.console-line')].find((l) => l.textContent!.includes(want));
            if (line) line.scrollIntoView({ block: 'center' });
            else el.scrollBy({ top: el.clientHeight });
            return line !== undefined;
          }, text),
        { what: `the line "${text}" to be drawn` },
      );
      return console.locator('.console-line', { hasText: text });
    };
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      const warning = await lineWith('WARNING: learning rate is high');
      expect(await warning.getAttribute('data-stream')).toBe('stderr');
      expect(await warning.locator('.console-gutter').textContent()).toBe('err');
      const color = (l: Locator) => l.locator('.console-text').evaluate((el) => getComputedStyle(el).color);
      const warningColor = await color(warning);
      const epoch = await lineWith('epoch 1');
      expect(await epoch.getAttribute('data-stream')).toBe('stdout');
      expect(await color(epoch)).not.toBe(warningColor);
      const loss = (await lineWith('loss: 0.91')).locator('.console-text');
      expect(await loss.textContent()).toBe('    loss: 0.91');
      // Indentation is drawn as printed, and long lines wrap instead of widening the page.
      expect(await loss.evaluate((el) => getComputedStyle(el).whiteSpace)).toBe('pre-wrap');
      expect(await scrollsSideways(page)).toBe(false);

      const total = await totalLines();
      expect(total).toBeGreaterThan(90);
      await page.getByLabel('search the output').fill('STEP 08');
      await waitUntil(async () => (await console.locator('.console-line').count()) === 10, { what: 'only the 10 lines with "step 08"' });
      expect(await console.locator('.console-text').allTextContents()).toEqual(Array.from({ length: 10 }, (_, i) => `step 08${i} ok`));
      expect(await console.locator('mark').first().textContent()).toBe('step 08');
      expect(await page.getByRole('heading', { name: /^Console/ }).textContent()).toBe(`Console (10 of ${total} lines)`);
      await page.getByLabel('search the output').fill('no such line');
      await page.getByText('No line matches “no such line”.').waitFor();
      await page.getByLabel('search the output').fill('');
      await waitUntil(async () => (await totalLines()) === total, { what: 'every line back' });
      expect(await withinViewport(page, page.getByRole('button', { name: 'Download full log' }))).toBe(true);
    }
    await page.setViewportSize({ width: 1280, height: 900 });

    const logFile = readFileSync(join(dataDir, 'logs', `${ids.train}.log`));
    expect(logFile.toString()).toContain('[stderr] Traceback (most recent call last):\n');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download full log' }).click()]);
    expect(download.suggestedFilename()).toBe(`train-${ids.train}.log`);
    const saved = join(dir.path, 'downloaded.log');
    await download.saveAs(saved);
    expect(readFileSync(saved)).toEqual(logFile);
    // The same log by range, as `curl -r -64` asks for its last 64 bytes.
    const tail = await fetch(`${server!.url}/api/v1/runs/${ids.train}/log`, { headers: { range: 'bytes=-64' } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(logFile.subarray(logFile.length - 64));
  });

  it('a live exec run: the console follows new lines, stops when scrolled up, follows again on request; its collected files appear with previews', async () => {
    const render = runtrail(['exec', '--server', server!.url, '--collect', 'out/', '--quiet', '--', 'python3', 'render.py'], { cwd: work });
    const id = await waitUntil(() => runIdOf(render.stderr()), { what: 'runtrail exec to create its run' });
    await page.goto(`${server!.url}/runs/${id}`);
    const console = page.getByRole('log', { name: 'run output' });
    // The lines it holds (it draws only those in and near its view).
    const count = async () => Number(/\(([\d,]+) lines?\)/.exec((await page.getByRole('heading', { name: /^Console/ }).textContent()) ?? '')?.[1]?.replace(/,/g, '') ?? 0);
    const atBottom = () => console.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 8);
    const scrollable = () => console.evaluate((el) => el.scrollHeight > el.clientHeight + 50);
    await waitUntil(scrollable, { what: 'more output than the console shows at once', timeoutMs: 20_000 });
    const follow = page.getByRole('button', { name: /^Follow/ });
    const scrollTop = () => console.evaluate((el) => el.scrollTop);
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      expect(await follow.getAttribute('aria-pressed')).toBe('true');
      let seen = await count();
      await waitUntil(async () => (await count()) > seen + 3, { what: 'new lines to arrive' });
      // Lines keep coming: the scroll to the newest one follows each render, so wait for it rather than sample between the two.
      await waitUntil(atBottom, { what: 'the console to follow the new lines' });
      expect(await console.locator('.console-line').last().isVisible()).toBe(true);

      await console.hover();
      await page.mouse.wheel(0, -100_000);
      await waitUntil(async () => (await follow.getAttribute('aria-pressed')) === 'false', { what: 'scrolling up to stop following' });
      // A wheel scroll is animated, and Chromium may end one long animation a line short of the top
      // while output keeps coming: the reader scrolls on, as a person would, until the first line.
      await waitUntil(
        async () => {
          if ((await scrollTop()) === 0) return true;
          await page.mouse.wheel(0, -2_000);
          return false;
        },
        { what: 'the scroll to reach the first line' },
      );
      seen = await count();
      await waitUntil(async () => (await count()) > seen + 3, { what: 'more lines to arrive' });
      // The reader stays where they scrolled to while output keeps coming.
      expect(await scrollTop()).toBe(0);
      expect(await atBottom()).toBe(false);
      expect(await console.locator('.console-line').first().isVisible()).toBe(true);
      expect(await withinViewport(page, follow)).toBe(true);
      await follow.click();
      await waitUntil(atBottom, { what: 'the console to jump to the newest line' });
      expect(await follow.getAttribute('aria-pressed')).toBe('true');
    }
    await page.setViewportSize({ width: 1280, height: 900 });

    // The files are stored when the script ends; the page shows them without a reload.
    expect(await page.getByRole('heading', { name: /^Artifacts/ }).count()).toBe(0);
    writeFileSync(join(work, 'go'), '');
    const ended = await render.done;
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stderr).toContain('stored 7 artifact(s)');
    // And its whole output, stored as output.log after them (exec with a server elsewhere).
    await page.getByRole('heading', { name: 'Artifacts (8)' }).waitFor();

    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      expect(await page.getByLabel('contents of 01_input.txt').textContent()).toBe('hello\n  indented line\n');
      const json = await page.getByLabel('contents of 02_result.json').textContent();
      expect(JSON.parse(json!)).toEqual({ score: 0.93, labels: ['cat', 'dog'] });
      expect(json).toContain('\n  "score": 0.93,\n  "labels": [\n    "cat",');

      const md = page.getByLabel('contents of 03_report.md');
      await md.getByRole('heading', { name: 'Report' }).waitFor();
      expect(await md.locator('strong').textContent()).toBe('bold');
      expect(await md.locator('em').textContent()).toBe('emphasis');
      expect(await md.getByRole('listitem').allTextContents()).toEqual(['first point', 'second point']);
      expect(await md.getByRole('link', { name: 'safe link' }).getAttribute('href')).toBe('https://example.com/docs');
      expect(await md.getByRole('link', { name: 'bad link' }).count()).toBe(0);
      // The blocked link stays as its text, with nothing of its URL left over.
      expect(await md.locator('p', { hasText: 'safe link' }).textContent()).toBe('safe link and bad link');
      expect(await md.textContent()).toContain('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">');
      expect(await md.locator('script, img').count()).toBe(0);
      expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();

      const table = page.getByRole('table', { name: 'contents of 04_table.csv' });
      expect(await table.locator('th').allTextContents()).toEqual(['name', 'score']);
      expect(await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => c.textContent)))).toEqual([
        ['Smith, J', '0.9'],
        ['Lee', '0.8'],
      ]);

      const image = page.getByRole('img', { name: '05_plot.png' });
      await waitUntil(() => image.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 3 && img.naturalHeight === 2), {
        what: 'the PNG preview to load',
      });
      const audio = page.getByLabel('contents of 06_tone.wav');
      await waitUntil(() => audio.evaluate((a: HTMLAudioElement) => a.readyState >= 1 && Math.abs(a.duration - 0.5) < 0.01), {
        what: 'the audio player to load the WAV (0.5 s)',
      });
      expect(await page.getByRole('button', { name: 'preview 07_model.bin' }).count()).toBe(0);
      expect(await scrollsSideways(page)).toBe(false);
    }
    await page.setViewportSize({ width: 1280, height: 900 });

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'download 07_model.bin' }).click()]);
    expect(download.suggestedFilename()).toBe('07_model.bin');
    const saved = join(dir.path, 'model.bin');
    await download.saveAs(saved);
    expect(readFileSync(saved)).toEqual(Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
    // A stored preview folds away like any other.
    await page.getByRole('button', { name: 'hide 01_input.txt' }).click();
    await page.getByLabel('contents of 01_input.txt').waitFor({ state: 'detached' });
  });

  it('a command stopped by its idle timeout says it was killed by a signal and why; a failure that printed a lot keeps its last 20 stderr lines', async () => {
    writeFileSync(join(work, 'hang.py'), HANG);
    writeFileSync(join(work, 'noisy.py'), NOISY);
    const [hang, noisy] = await Promise.all([
      runtrail(['exec', '--server', server!.url, '--idle-timeout', '1000', '--kill-grace', '500', '--quiet', '--', 'python3', 'hang.py'], { cwd: work }).done,
      runtrail(['exec', '--server', server!.url, '--quiet', '--', 'python3', 'noisy.py'], { cwd: work }).done,
    ]);
    expect(hang.code, hang.stderr).toBe(124);
    expect(noisy.code, noisy.stderr).toBe(2);
    const hangId = runIdOf(hang.stderr)!;
    const noisyId = runIdOf(noisy.stderr)!;

    await page.goto(`${server!.url}/runs/${hangId}`);
    await page.getByTestId('error-kind').waitFor();
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      expect(await page.getByTestId('exec-exit').textContent()).toBe('killed by SIGTERM (stopped by its idle timeout)');
      expect(await page.getByTestId('error-kind').textContent()).toBe('timeout');
      expect(await page.getByTestId('run-error').locator('.error-head').textContent()).toBe(
        'python3 hang.py printed nothing for 1 s (idle timeout): sent SIGTERM, which ended it',
      );
    }

    await page.goto(`${server!.url}/runs/${noisyId}`);
    await page.getByTestId('error-kind').waitFor();
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      const error = page.getByTestId('run-error');
      expect(await error.locator('.error-head').textContent()).toBe('python3 noisy.py exited with code 2');
      expect(await page.getByTestId('exec-exit').textContent()).toBe('exit code 2');
      const lines = (await error.getByLabel('run error details').textContent())!.split('\n');
      // Bounded: the last 20 of the 60 lines, not the whole stream.
      expect(lines).toEqual(['last 20 lines of stderr:', ...Array.from({ length: 20 }, (_, i) => `warn ${40 + i}: retrying connection to db-${(40 + i) % 3}`)]);
      expect(await scrollsSideways(page)).toBe(false);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('failed calls are listed with their errors after a later success cleared "last error"; any event row opens to its full text, on a phone too', async () => {
    const run = await client.createRun({ name: 'eval', input: { model: 'small', docs: 2 }, labels: { suite: 'nightly' } });
    ids.sdk = run.id;
    const traceback = [
      'Traceback (most recent call last):',
      '  File "eval.py", line 3, in score',
      '    return total / count',
      'ZeroDivisionError: division by zero',
    ].join('\n');
    const long = `summary: ${'x'.repeat(400)} END-OF-LINE`;
    run.event('call.started', { callId: 'c1', label: 'doc_1' });
    run.event('call.failed', { callId: 'c1', error: traceback, willRetry: false });
    // An attempt that failed and was retried, then succeeded: a Retry, not a failed call.
    run.event('call.started', { callId: 'c3', label: 'doc_3' });
    run.event('call.failed', { callId: 'c3', error: '429 rate limited', willRetry: true });
    run.event('call.retried', { callId: 'c3', attempt: 2 });
    run.event('call.succeeded', { callId: 'c3' });
    run.event('call.started', { callId: 'c2', label: 'doc_2' });
    run.event('call.succeeded', { callId: 'c2' });
    run.log('slow response from the provider', 'warn');
    run.log('provider returned 500', 'error');
    run.log(long);
    // What `runtrail exec --log-file` records when it runs on another machine.
    run.event('artifact', { name: 'output.log', uri: 'file:///home/ana/job/out.log', contentType: 'text/plain' });
    run.meta({ exec: { command: 'python3 job.py', host: 'build-box-7', exitCode: 0, signal: null, reason: 'exit', durationMs: 1500 }, model_version: '2024-05-01' });
    // A preview is a glance: of a 286 KiB text only the first 256 KiB are fetched and shown.
    const big = Array.from({ length: 300 * 16 }, (_, i) => `line ${String(i).padStart(5, '0')} ${'.'.repeat(49)}`).join('\n');
    expect(big.length).toBeGreaterThan(256 * 1024);
    await run.artifact('big.txt', big, { contentType: 'text/plain' });
    await run.succeed({ accuracy: 0.5 });

    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: 'eval', exact: true }).waitFor();
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 900 });
      expect(await page.getByTestId('counter-failed').textContent()).toBe('1');
      expect(await page.getByTestId('last-error-none').textContent()).toBe('None now: a later success cleared it. The failed calls are below.');
      const failed = page.getByTestId('failed-call');
      // The counters come with the persisted snapshot, the failed call's row with the events that follow it.
      await failed.first().waitFor();
      expect(await failed.count()).toBe(1);
      expect(await failed.locator('.call-label-full').textContent()).toBe('doc_1');
      expect(await failed.locator('.error-head').textContent()).toBe('ZeroDivisionError: division by zero');
      const detail = failed.getByLabel('error of call doc_1');
      expect(await detail.isVisible()).toBe(false);
      await failed.locator('summary').click();
      await detail.waitFor({ state: 'visible' });
      expect(await detail.textContent()).toBe(traceback);
      expect(await withinViewport(page, detail)).toBe(true);
      await failed.locator('summary').click();
      // The retried attempt is listed apart, folded away: the heading's count is the calls that failed for good.
      const retried = page.getByTestId('retried-attempt');
      expect(await retried.isVisible()).toBe(false);
      await page.locator('.retried-calls > summary').click();
      await retried.waitFor({ state: 'visible' });
      expect(await retried.count()).toBe(1);
      expect(await retried.locator('.call-label-full').textContent()).toBe('doc_3');
      await page.locator('.retried-calls > summary').click();
      await retried.waitFor({ state: 'hidden' });

      const context = page.getByRole('region', { name: 'Context and results' });
      expect(JSON.parse((await context.getByLabel('Output as JSON').textContent())!)).toEqual({ accuracy: 0.5 });
      // Each JSON block folds away and opens again.
      const input = context.getByLabel('Input as JSON');
      expect(JSON.parse((await input.textContent())!)).toEqual({ model: 'small', docs: 2 });
      await context.locator('summary', { hasText: 'Input' }).click();
      await input.waitFor({ state: 'hidden' });
      await context.locator('summary', { hasText: 'Input' }).click();
      await input.waitFor({ state: 'visible' });

      const preview = page.getByLabel('contents of big.txt');
      await waitUntil(async () => ((await preview.textContent()) ?? '').length > 0, { what: 'the big text preview to load' });
      expect((await preview.textContent())!.length).toBe(256 * 1024);
      expect(big.startsWith((await preview.textContent())!)).toBe(true);
      expect(await page.getByTestId('artifact-big.txt').getByText(/^Showing the first 256\.0 KiB of \d+\.\d KiB; download it for the rest\.$/).isVisible()).toBe(true);
      expect(await context.getByTestId('exec-host').textContent()).toBe('build-box-7');
      // meta.exec is shown as facts above; the rest of meta as JSON.
      expect(JSON.parse((await context.getByLabel('Meta as JSON').textContent())!)).toEqual({ model_version: '2024-05-01' });
      // Log levels in the console are told apart by colour and named in the gutter.
      const output = page.getByRole('log', { name: 'run output' });
      const line = (text: string) => output.locator('.console-line', { hasText: text });
      const colour = (text: string) => line(text).locator('.console-text').evaluate((el) => getComputedStyle(el).color);
      expect(await line('provider returned 500').locator('.console-gutter').textContent()).toBe('error');
      expect(await line('slow response').locator('.console-gutter').textContent()).toBe('warn');
      expect(new Set([await colour('provider returned 500'), await colour('slow response'), await colour('summary: xxx')]).size).toBe(3);
      expect(await context.getByTestId('exec-duration').textContent()).toBe('1.5\u00a0s');
      expect(await page.getByTestId('log-elsewhere').textContent()).toBe(
        `the output of run ${run.id} went to the log file /home/ana/job/out.log on another host, build-box-7; this server (node e2e-run-page) has no copy of it. What it printed is also in its log events.`,
      );
      expect(await page.getByRole('button', { name: 'Download full log' }).count()).toBe(0);

      // Each row says what happened in words: a call by its label, a failure by its exception line.
      const rowsOf = (type: string) => page.getByRole('log', { name: 'event log' }).locator(`.log-entry.type-${type} .log-data`).allTextContents();
      expect(await rowsOf('call-failed')).toEqual(['doc_1 failed: ZeroDivisionError: division by zero', 'doc_3 failed, will retry: 429 rate limited']);
      expect(await rowsOf('call-succeeded')).toEqual(['doc_3 succeeded', 'doc_2 succeeded']);
      expect(await rowsOf('run-succeeded')).toEqual(['output: {"accuracy":0.5}']);

      // The log row is cut to one line; opened, it shows the whole message, wrapped to the screen.
      const entry = page.getByRole('log', { name: 'event log' }).locator('.log-entry', { hasText: 'summary: xxx' });
      const row = entry.locator('.log-row');
      const toggle = entry.getByRole('button', { name: /^show event \d+ in full$/ });
      await row.scrollIntoViewIfNeeded();
      expect(await toggle.getAttribute('aria-expanded')).toBe('false');
      // The one-line row is cut; a tap anywhere on it opens it.
      expect(await row.locator('.log-data').evaluate((el) => el.scrollWidth > el.clientWidth)).toBe(true);
      await row.click();
      const full = page.getByLabel(/^event \d+ in full$/);
      await full.waitFor();
      expect(await entry.getByRole('button', { name: /^hide event \d+ in full$/ }).getAttribute('aria-expanded')).toBe('true');
      expect(await full.textContent()).toContain(long);
      expect(await full.textContent()).toContain('"level": "info"');
      expect(await withinViewport(page, full)).toBe(true);
      expect(await full.evaluate((el) => el.scrollWidth <= el.clientWidth)).toBe(true);
      // The rows below move down for it, not under it: once the virtualised log has measured the opened
      // row (a ResizeObserver callback, a frame after it opened), which a busy machine can leave for a while.
      const next = page.getByRole('log', { name: 'event log' }).locator('.log-entry').filter({ hasText: 'artifact' }).first();
      await waitUntil(
        async () => {
          const [fullBox, nextBox] = [await full.boundingBox(), await next.boundingBox()];
          return nextBox!.y >= fullBox!.y + fullBox!.height - 1;
        },
        { what: 'the rows below the opened one to move down for it' },
      );
      await entry.getByRole('button', { name: /^hide event \d+ in full$/ }).click();
      await full.waitFor({ state: 'detached' });
      expect(await scrollsSideways(page)).toBe(false);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('direction controls in text a run chose show as markers and reorder nothing: its name, labels, output and errors, on its page and in the list', async () => {
    // Shown as is, "rtl \u202Egnp.exe\u202C tail" reads "rtl exe.png tail".
    const run = await client.createRun({ name: 'rtl \u202Egnp.exe\u202C tail', labels: { file: 'a\u2066b\u2069c' } });
    run.event('call.started', { callId: 'c1', label: 'call \u202Elabel' });
    run.event('call.failed', { callId: 'c1', error: 'err \u202Egnp.exe\u202C', willRetry: false });
    run.log('log \u202Egnp.exe\u202C line');
    await run.fail('boom \u202Egnp.exe\u202C\nsecond line');
    const name = 'rtl ⟨U+202E⟩gnp.exe⟨U+202C⟩ tail';
    const anyControl = () => page.evaluate(() => /[\u202A-\u202E\u2066-\u2069]/.test(document.body.innerText + document.title));

    await page.goto(`${server!.url}/runs/${run.id}`);
    await waitUntil(async () => (await textNow(page.getByRole('heading', { level: 1 }))) === name, { what: 'the name with its markers' });
    await page.getByTestId('failed-call').waitFor();
    await page.getByRole('log', { name: 'run output' }).locator('.console-line').waitFor();
    await waitUntil(async () => (await page.title()) === `failed · ${name} · runtrail`, { what: 'the tab title' });
    expect(await page.getByTestId('run-labels').locator('.label').textContent()).toBe('file=a⟨U+2066⟩b⟨U+2069⟩c');
    const runError = page.getByTestId('run-error');
    expect(await runError.locator('.error-head').textContent()).toBe('boom ⟨U+202E⟩gnp.exe⟨U+202C⟩');
    // One line more is one line, not "1 more lines".
    expect(await runError.locator('summary').textContent()).toBe('1 more line');
    expect(await page.getByTestId('failed-call').locator('.call-label-full').textContent()).toBe('call ⟨U+202E⟩label');
    expect(await page.getByTestId('failed-call').locator('.error-head').textContent()).toBe('err ⟨U+202E⟩gnp.exe⟨U+202C⟩');
    expect(await page.getByRole('log', { name: 'run output' }).locator('.console-text').textContent()).toBe('log ⟨U+202E⟩gnp.exe⟨U+202C⟩ line');
    expect(await page.locator('.log-entry.type-log .log-data').textContent()).toBe('log ⟨U+202E⟩gnp.exe⟨U+202C⟩ line');
    // Nowhere on the page (timeline, event rows, title) is one left to act.
    expect(await anyControl()).toBe(false);

    await page.goto(`${server!.url}/?q=rtl`);
    const row = page.locator(`tr[data-run-id="${run.id}"]`);
    await row.waitFor();
    expect(await row.locator('.run-name').textContent()).toBe(name);
    expect(await row.getByTestId('reason').textContent()).toBe('error boom ⟨U+202E⟩gnp.exe⟨U+202C⟩');
    expect(await anyControl()).toBe(false);
  });

  it('a command stopped by a cancel reads "killed by SIGTERM (cancelled or interrupted)", one clause, not a parenthesis in a parenthesis', async () => {
    const run = await client.createRun({ name: 'cancelled-command' });
    // What exec records when a cancel or Ctrl-C stops its command (reason "aborted").
    run.meta({ exec: { command: 'sleep 600', host: 'box', exitCode: null, signal: 'SIGTERM', reason: 'aborted', killedWith: 'SIGTERM', durationMs: 1200 } });
    await run.cancelled('wrong dataset');
    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByTestId('exec-exit').waitFor();
    expect(await page.getByTestId('exec-exit').textContent()).toBe('killed by SIGTERM (cancelled or interrupted)');
  });

  it('the console shows coloured output and a progress bar redrawn with \\r as a terminal does, not their control codes', async () => {
    const run = await client.createRun({ name: 'coloured-output' });
    run.log('\x1b[32mINFO\x1b[0m starting');
    run.log('progress 0%|    |\rprogress 50%|##  |\rprogress 100%|####|');
    await run.succeed();
    await page.goto(`${server!.url}/runs/${run.id}`);
    const lines = page.getByRole('log', { name: 'run output' }).locator('.console-text');
    await waitUntil(async () => (await lines.count()) === 2, { what: 'the two lines' });
    expect(await lines.allTextContents()).toEqual(['INFO starting', 'progress 100%|####|']);
  });

  it('lists failed calls newest first, numbered in the order they failed: a new failure of a live run appears at the top', async () => {
    const run = await client.createRun({ name: 'failing-live' });
    const failCall = (i: number) => {
      run.event('call.started', { callId: `c${i}`, label: `doc_${i}` });
      run.event('call.failed', { callId: `c${i}`, error: `error ${i}`, willRetry: false });
    };
    for (const i of [1, 2, 3]) failCall(i);
    await run.flush();
    await page.goto(`${server!.url}/runs/${run.id}`);
    const list = page.getByRole('list', { name: 'failed calls, newest first' });
    const shown = async () => ({
      labels: await list.locator('.call-label-full').allTextContents(),
      // An <ol reversed start=N> numbers its first item N, the next N - 1, ...
      first: await list.evaluate((ol: HTMLOListElement) => (ol.reversed ? ol.start : 1)),
    });
    await waitUntil(async () => (await list.count()) === 1 && JSON.stringify(await shown()) === JSON.stringify({ labels: ['doc_3', 'doc_2', 'doc_1'], first: 3 }), {
      what: 'the three failures, newest first, the newest numbered 3',
    });
    expect(await page.locator('.failed-calls h3').textContent()).toBe('Failed calls (3) newest first');
    failCall(4);
    await run.flush();
    await waitUntil(async () => JSON.stringify(await shown()) === JSON.stringify({ labels: ['doc_4', 'doc_3', 'doc_2', 'doc_1'], first: 4 }), {
      what: 'the new failure at the top, numbered 4',
    });
    await run.succeed();
  });

  it('shows every digit of a failed call\'s number past 99 and past 999 (1,234 failures), at 1280 and 390 px', async () => {
    const run = await client.createRun({ name: 'failing-many' });
    for (let i = 1; i <= 1234; i++) {
      run.event('call.started', { callId: `c${i}`, label: `doc_${i}` });
      run.event('call.failed', { callId: `c${i}`, error: `error ${i}`, willRetry: false });
    }
    await run.flush();
    await run.fail(new Error('too many failures'));
    // The number is the list's ::marker, drawn in the list's left padding: a number wider than the padding
    // is cut at the panel's edge ("234." for 1234). Its width is that of its text in the item's font.
    const fits = (list: Locator) =>
      list.evaluate((ol: HTMLOListElement) => {
        const item = ol.querySelector('li')!;
        const context = document.createElement('canvas').getContext('2d')!;
        context.font = getComputedStyle(item).font;
        const number = context.measureText(`${ol.start}. `).width;
        return { start: ol.start, fits: number <= parseFloat(getComputedStyle(ol).paddingLeft) };
      });
    await page.goto(`${server!.url}/runs/${run.id}`);
    const list = page.getByRole('list', { name: 'failed calls, newest first' });
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 900 });
      await waitUntil(async () => (await list.count()) === 1 && (await list.locator('li').count()) > 0, { what: `the failed calls at ${width} px` });
      expect(await fits(list), `at ${width} px`).toEqual({ start: 1234, fits: true });
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('left no errors in the browser console', () => {
    expect(probed404s).toEqual([`${server!.url}/api/v1/runs/${ids.sdk}/log`]);
    expect(errors.filter((e) => !e.startsWith('Failed to load resource: the server responded with a status of 404'))).toEqual([]);
    expect(errors).toHaveLength(probed404s.length);
  });
});
