import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { runtrail, serve, type ServeProcess } from './harness.js';

/** `runtrail start`, against a `runtrail serve --handlers` process, as a shell script uses it. */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;
let client: RuntrailClient;
const start = (args: string[]) => runtrail(['start', ...args, '--server', server.url]);

beforeAll(async () => {
  dir = tempDir();
  const handlers = fileURLToPath(new URL('./fixtures/handlers/start.mjs', import.meta.url));
  server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'silent', '--handlers', handlers]);
  client = new RuntrailClient({ url: server.url });
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

describe('runtrail start', () => {
  it('queues a run for a handler with its input and labels: the id alone on stdout, where to watch it on stderr', async () => {
    const result = await start(['answer', '--input', '{"dataset": "docs-v2", "n": 3}', '--label', 'team=search', '--label', 'night=yes']);
    expect(result.code, result.stderr).toBe(0);
    const id = result.stdout.trim();
    expect(result.stdout).toBe(`${id}\n`);
    expect(result.stderr).toBe(`run ${id} of answer is queued: ${server.url}/runs/${id}\n`);
    const ended = await waitUntil(async () => {
      const run = await client.getRun(id);
      return run.status === 'succeeded' ? run : null;
    }, { what: 'the started run to succeed' });
    expect(ended.input).toEqual({ dataset: 'docs-v2', n: 3 });
    expect(ended.labels).toEqual({ team: 'search', night: 'yes' });
    expect(ended.output).toEqual({ got: { dataset: 'docs-v2', n: 3 } });
  });

  it('takes the input from a file (@FILE); the same --idempotency-key answers the run it started, not a second one', async () => {
    const file = join(dir.path, 'job.json');
    writeFileSync(file, '{"from": "file"}\n');
    const first = await start(['answer', '--input', `@${file}`, '--idempotency-key', 'nightly-2026-11-28']);
    const again = await start(['answer', '--input', `@${file}`, '--idempotency-key', 'nightly-2026-11-28']);
    expect(first.code, first.stderr).toBe(0);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(first.stdout);
    const run = await client.getRun(first.stdout.trim());
    expect(run.input).toEqual({ from: 'file' });
    const { runs } = await client.listRuns({ name: 'answer', limit: 100 });
    expect(runs.filter((r) => r.id === run.id)).toHaveLength(1);
  });

  it('--follow draws its progress until it ends and exits with its result: 0 succeeded, 1 failed with the error', async () => {
    const ok = await start(['fail-on-demand', '--follow']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/run \S+ ended succeeded\n$/);
    expect(ok.stderr).toMatch(/^run \S+ of fail-on-demand is queued; following it \(Ctrl-C stops following, not the run\)\n$/);

    const failed = await start(['fail-on-demand', '--input', '{"fail": "on purpose"}', '--follow']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/run \S+ ended failed \(error: asked to fail: on purpose\)\n$/);
  });

  it('--follow --json prints the run as it ended, one JSON document on stdout, the status line on stderr', async () => {
    const result = await start(['answer', '--input', '[1, 2]', '--follow', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const run = JSON.parse(result.stdout) as { status: string; output: unknown };
    expect(run).toMatchObject({ status: 'succeeded', output: { got: [1, 2] } });
    expect(result.stderr).toContain('100% succeeded');
  });

  it('says in one line what is wrong (input that is not JSON, a missing file, an unknown handler) and starts nothing, exit 2', async () => {
    const before = (await client.listRuns({ limit: 200 })).runs.length;
    const cases: Array<[string[], string]> = [
      [['answer', '--input', '{dataset: docs}'], "runtrail: invalid_request: --input is not JSON: Expected property name or '}' in JSON at position 1 (quote it for the shell: --input '{\"key\": \"value\"}'; a plain string is --input '\"text\"')\n"],
      [['answer', '--input', '@no-such-job.json'], 'runtrail: invalid_request: --input @no-such-job.json: no such file\n'],
      [['answer', '--input', `@${dir.path}`], `runtrail: invalid_request: --input @${dir.path}: it is a folder\n`],
      [['no-such-handler'], 'runtrail: handler_not_found: no handler named "no-such-handler" on node '],
      [['answer', '--label', 'team'], 'runtrail: invalid_request: --label "team" must be key=value\n'],
      [['answer', '--label', 'env=dev', '--label', 'env=prod'], 'runtrail: invalid_request: --label env given twice, "dev" and "prod": a label has one value\n'],
    ];
    for (const [args, said] of cases) {
      const result = await start(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr.startsWith(said), `${args.join(' ')}: ${result.stderr}`).toBe(true);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    expect(knownHandlers(await start(['no-such-handler']))).toEqual(['answer', 'demo-pipeline', 'fail-on-demand']);
    expect((await client.listRuns({ limit: 200 })).runs.length).toBe(before);
  });
});

/** The handlers a handler_not_found message lists. */
function knownHandlers(result: { stderr: string }): string[] {
  return /known handlers: ([^(]*) \(/.exec(result.stderr)?.[1]?.split(', ').map((s) => s.trim()) ?? [];
}
