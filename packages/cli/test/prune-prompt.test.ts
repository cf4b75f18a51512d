import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { BIN, serve, type ServeProcess } from './harness.js';

/**
 * `runtrail prune` asks before it deletes, on a terminal. Ctrl-C at that
 * question printed readline's "AbortError: Aborted with Ctrl+C" with its
 * stack, exit 1; Ctrl-D did too. Here in a real terminal (script(1)'s).
 */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;

beforeAll(async () => {
  dir = tempDir();
  server = await serve(['--port', '0', '--data-dir', join(dir.path, 'data'), '--log-level', 'warn']);
  const run = await new RuntrailClient({ url: server.url }).createRun({ name: 'old' });
  await run.succeed();
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

/** `runtrail prune` in a terminal: at its question, `key` is typed; its exit code and what the terminal showed. */
async function answerPrompt(key: string): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, BIN, '--server', server.url, 'prune', '--older-than', '1ms'].map(quote).join(' ');
  // script(1) runs it on a terminal of its own and passes what is written to its stdin on as typed keys.
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.on('data', (d: Buffer) => (screen += d));
  await waitUntil(() => screen.includes('[y/N] '), { timeoutMs: 20_000, what: "prune's question" });
  child.stdin.write(key);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, screen };
}

describe("Ctrl-C or Ctrl-D at prune's question", () => {
  it('Ctrl-C: says nothing was deleted, exit 130, no stack', async () => {
    const { code, screen } = await answerPrompt('\x03');
    expect(screen).not.toMatch(/AbortError|\n\s+at /);
    expect(screen).toMatch(/\[y\/N\] .*\r?\nruntrail: nothing deleted \(Ctrl-C\)\r?\n$/s);
    expect(code).toBe(130);
    expect((await new RuntrailClient({ url: server.url }).listRuns()).runs.map((r) => r.name)).toEqual(['old']);
  });

  it('Ctrl-D: not confirmed, exit 2, no stack', async () => {
    const { code, screen } = await answerPrompt('\x04');
    expect(screen).not.toMatch(/AbortError|\n\s+at /);
    expect(screen).toMatch(/\r?\nruntrail: invalid_request: nothing deleted \(not confirmed\)\r?\n$/);
    expect(code).toBe(2);
    expect((await new RuntrailClient({ url: server.url }).listRuns()).runs.map((r) => r.name)).toEqual(['old']);
  });
});
