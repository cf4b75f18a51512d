import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { createServer, type RunningServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { DEMO_HANDLER, defineDemoHandler } from './handler.js';
import { DEMO_DEFAULTS } from './pipeline.js';

/** The demo pipeline as `npm start` runs it: a handler on a real server, started through the API. */
let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeAll(async () => {
  dir = tempDir('runtrail-demo-');
  const built = await createServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
  defineDemoHandler(built);
  server = await built.listen();
  client = new RuntrailClient({ url: server.url });
});

afterAll(async () => {
  await server.close();
  dir.remove();
});

describe('the demo pipeline', () => {
  it("is described by the README as it runs by default: its documents, models and the calls its progress counts", () => {
    const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
    const said = /The demo judges (\d+) documents with (\w+) models, so its progress counts (\d+) calls/.exec(readme);
    expect(said, 'the sentence after `npm start` in the README').not.toBeNull();
    const words: Record<string, number> = { one: 1, two: 2, three: 3, four: 4 };
    expect([Number(said![1]), words[said![2]!], Number(said![3])]).toEqual([
      DEMO_DEFAULTS.docs,
      DEMO_DEFAULTS.models.length,
      DEMO_DEFAULTS.docs * DEMO_DEFAULTS.models.length,
    ]);
  });

  it('reports accuracy once per step: its chart has as many points as its summary has values', async () => {
    // 5 documents × 2 models: 10 calls, so the loop's every-10th report lands on the last step.
    const run = await client.createRun({ name: DEMO_HANDLER, execute: true, input: { docs: 5, latencyMs: 1, failureRate: 0 } });
    const ended = await waitUntil(async () => {
      const now = await client.getRun(run.id);
      return now.status === 'queued' || now.status === 'running' ? null : now;
    }, { what: 'the demo run to end', timeoutMs: 20_000 });
    expect(ended.status).toBe('succeeded');
    const steps: number[] = [];
    for (let after = 0; after < ended.seq; ) {
      const page = await client.readEvents(run.id, after);
      for (const e of page.events) if (e.type === 'metric' && (e.data as { name: string }).name === 'accuracy') steps.push((e.data as { step: number }).step);
      after = page.events.at(-1)!.seq;
    }
    expect(steps).toEqual([10]);
    expect(ended.snapshot.metrics.accuracy).toMatchObject({ count: 1, step: 10 });
    // The settings it ran with, the defaults filled in: every one of them, as the input's fields.
    expect(ended.snapshot.meta).toEqual({ docs: 5, models: ['gpt-4o', 'claude-sonnet'], concurrency: 6, failureRate: 0, latencyMs: 1 });
  });

  it("gives generating time for the documents asked for: a big demo is not failed by the phase's timeout", async () => {
    // 20,000 documents: 1,000 pauses of 250 ms, 250 s of generating, over the minute that was every run's timeout.
    const run = await client.createRun({ name: DEMO_HANDLER, execute: true, input: { docs: 20_000, latencyMs: 1_000 } });
    const generating = await waitUntil(async () => (await client.getRun(run.id)).snapshot.phases.find((p) => p.name === 'generate') ?? null, {
      what: 'the generate phase to start',
    });
    await client.cancelRun(run.id, 'seen enough');
    expect(generating.timeoutMs).toBeGreaterThanOrEqual(250_000);
  });
});
