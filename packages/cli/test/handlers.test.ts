import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { runtrail, serve, type ServeProcess } from './harness.js';

/** `runtrail handlers [NAME]`, against a `runtrail serve --handlers` process, as a user finds out what to start. */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;
const inputsModule = fileURLToPath(new URL('./fixtures/handlers/inputs.mjs', import.meta.url));
const handlers = (args: string[]) => runtrail(['handlers', ...args, '--server', server.url]);

beforeAll(async () => {
  dir = tempDir();
  server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'silent', '--node', 'cli-handlers', '--handlers', inputsModule]);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

describe('runtrail handlers', () => {
  it('lists each handler with the nodes that define it and its input in short: rows on stdout, the hint on stderr', async () => {
    const result = await handlers([]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      [
        'HANDLER        NODES         INPUT',
        'dated          cli-handlers  not shown (no JSON Schema)',
        'demo-pipeline  cli-handlers  object or null: docs, models, concurrency, failureRate, latencyMs',
        'free           cli-handlers  any (no schema)',
        'scored         cli-handlers  object: dataset, threshold, tags, model',
        'tinted         cli-handlers  "\\u009b31mred" or "plain"',
        '',
      ].join('\n'),
    );
    expect(result.stderr).toBe('`runtrail handlers NAME` shows the input a handler takes\n');
  });

  it('--json prints the whole GET /handlers answer, one object; with NAME, that handler', async () => {
    const all = await handlers(['--json']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stderr).toBe('');
    const answer = JSON.parse(all.stdout) as Awaited<ReturnType<RuntrailClient['describeHandlers']>>;
    const fromApi = await new RuntrailClient({ url: server.url }).describeHandlers();
    expect(Object.keys(answer).sort()).toEqual(Object.keys(fromApi).sort());
    expect(answer.handlers).toEqual(['dated', 'demo-pipeline', 'free', 'scored', 'tinted']);
    expect(answer.inputs).toEqual(fromApi.inputs);

    const one = await handlers(['scored', '--json']);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toEqual(fromApi.inputs.find((e) => e.handler === 'scored'));
  });

  it("NAME prints that handler's input: each field's type, bounds, required or default, and an input it accepts", async () => {
    const scored = await handlers(['scored']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(scored.stderr).toBe('');
    expect(scored.stdout).toBe(
      [
        'scored, defined on cli-handlers',
        'input: object; other fields are refused',
        'FIELD       TYPE             BOUNDS                REQUIRED                    DESCRIPTION',
        'dataset     string           at least 1 character  required                    which dataset to score',
        'threshold   number           0 to 1                optional, default 0.5',
        'tags        array of string                        optional',
        'model       object                                 optional',
        // Before: "required", as if every input needed a model.
        'model.name  string                                 required if model is given',
        'example: {"dataset":"x","threshold":0.5}',
        '',
      ].join('\n'),
    );
    const demo = await handlers(['demo-pipeline']);
    expect(demo.stdout).toContain('docs         integer                                1 to 100000    optional, default 120');
    expect(demo.stdout).toContain('example: {"docs":120,"models":["gpt-4o","claude-sonnet"],"concurrency":6,"failureRate":0.1,"latencyMs":350}\n');
    expect((await handlers(['free'])).stdout).toBe('free, defined on cli-handlers\ninput: any, or none (it was defined with no input schema)\n');
    expect((await handlers(['dated'])).stdout).toBe(
      'dated, defined on cli-handlers\ninput: its schema cannot be shown (Date cannot be represented in JSON Schema); the server still checks the input when a run starts\n',
    );
  });

  it("a server's text that holds a terminal control sequence is printed escaped, not obeyed", async () => {
    const result = await handlers(['tinted']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('tinted, defined on cli-handlers\ninput: "\\u009b31mred" or "plain"\nexample: "\\u009b31mred"\n');
  });

  it('a name no live node defines is one line naming the known handlers, exit 2, nothing on stdout', async () => {
    const result = await handlers(['scord']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('runtrail: handler_not_found: no live node defines a handler named "scord"; known handlers: dated, demo-pipeline, free, scored, tinted\n');
  });

  it('`runtrail start` with an input the handler refuses names the field and points at `runtrail handlers NAME`', async () => {
    const result = await runtrail(['start', 'scored', '--input', '{"dataset": "docs-v2", "threshold": 3}', '--server', server.url]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'runtrail: invalid_request: the input of a "scored" run: input.threshold: Too big: expected number to be <=1; `runtrail handlers scored` shows the input it takes\n',
    );
    // A refusal that is not of the input (a label) gets no such pointer.
    const label = await runtrail(['start', 'scored', '--input', '{"dataset": "d"}', '--label', 'k=\u0001', '--server', server.url]);
    expect(label.code).toBe(2);
    expect(label.stderr).not.toContain('runtrail handlers');
  });

  it('of a handler only another node defines, says which nodes and that this server does not know its input, rather than guess', async () => {
    const schema = await freshSchema();
    const nodesDir = tempDir('runtrail-cli-handlers-nodes-');
    const env = { RUNTRAIL_DATABASE_URL: TEST_DATABASE_URL, RUNTRAIL_DATABASE_SCHEMA: schema, RUNTRAIL_LOG_LEVEL: 'warn' };
    const started: ServeProcess[] = [];
    try {
      started.push(await serve(['--port', '0', '--node', 'node-a', '--data-dir', join(nodesDir.path, 'a')], { env }));
      started.push(await serve(['--port', '0', '--node', 'node-b', '--data-dir', join(nodesDir.path, 'b'), '--handlers', inputsModule], { env }));
      const a = started[0]!;
      const onA = (args: string[]) => runtrail(['handlers', ...args, '--server', a.url]);
      await waitUntil(async () => (await new RuntrailClient({ url: a.url }).describeHandlers()).inputs.some((e) => e.handler === 'scored'), {
        what: "node-b's handlers to reach node-a",
      });
      const list = await onA([]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout.split('\n')).toContain('scored         node-b          known only on its nodes');
      expect(list.stdout.split('\n')).toContain('demo-pipeline  node-a, node-b  object or null: docs, models, concurrency, failureRate, latencyMs');
      expect((await onA(['scored'])).stdout).toBe(
        'scored, defined on node-b\ninput: not known to this server: only node-b knows its schema, and checks the input when it runs (`runtrail --server URL-OF-THAT-NODE handlers scored` shows it)\n',
      );
    } finally {
      for (const node of started) expect(await node.stop()).toBe(0);
      nodesDir.remove();
      await dropSchema(schema);
    }
  });
});
