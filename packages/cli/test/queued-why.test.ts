import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { ordinal } from '@runtrail/protocol';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { runtrail, serve, type ServeProcess } from './harness.js';

/** `runtrail runs show` of a queued run held by its handler's concurrency says so, with its place in line; `runs ls` says its queued runs wait for it. */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;
let client: RuntrailClient;

beforeAll(async () => {
  dir = tempDir();
  const handlers = fileURLToPath(new URL('./fixtures/handlers/gpu-limit.mjs', import.meta.url));
  server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'silent', '--node', 'node-a', '--handlers', handlers]);
  client = new RuntrailClient({ url: server.url });
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

describe('runtrail runs show of a queued run', () => {
  it('says the handler runs 1 at a time on its node, 1 runs now, and the run is 3rd in line', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const started = await runtrail(['start', 'gpu', '--server', server.url]);
      expect(started.code, started.stderr).toBe(0);
      ids.push(started.stdout.trim());
    }
    await waitUntil(async () => ((await client.describeHandlers()).nodes[0]?.slots?.runningByHandler.gpu === 1 ? true : null), {
      what: 'node-a to tell one gpu run running',
    });
    const fourth = await runtrail(['runs', 'show', ids[3]!, '--server', server.url]);
    expect(fourth.code, fourth.stderr).toBe(0);
    expect(fourth.stdout).toContain(
      'status     queued\nwaiting    Queued: the limit of its handler is reached on every node that defines it: gpu runs 1 at a time on node-a (its concurrency), and 1 runs there now. It starts when one of them ends. It is 3rd in line (2 queued runs of it are older).\n',
    );
    const running = await runtrail(['runs', 'show', ids[0]!, '--server', server.url]);
    expect(running.stdout).not.toContain('waiting');
  });
});

describe('runtrail runs show of a queued run whose handler no live node defines', () => {
  it('says so, that it waits for a node that defines it, and when the server ends it if none comes', async () => {
    const own = tempDir();
    const handlers = fileURLToPath(new URL('./fixtures/handlers/gpu-limit.mjs', import.meta.url));
    const node = ['--port', '0', '--data-dir', own.path, '--log-level', 'silent', '--node', 'node-b'];
    // A node of concurrency 0 defines gpu but claims nothing: the run stays queued when it goes.
    const definer = await serve([...node, '--handlers', handlers], { env: { RUNTRAIL_CONCURRENCY: '0' } });
    let replacement: ServeProcess | null = null;
    try {
      const started = await runtrail(['start', 'gpu', '--server', definer.url]);
      expect(started.code, started.stderr).toBe(0);
      const id = started.stdout.trim();
      expect(await definer.stop()).toBe(0);
      // The same node name, without the handler: its announcement replaces the one that defined gpu.
      replacement = await serve(node, { env: { RUNTRAIL_REAPER_INTERVAL_MS: '200' } });
      const url = replacement.url;
      const other = new RuntrailClient({ url });
      const { queuedOrphanTimeoutMs, unclaimable } = await waitUntil(
        async () => {
          const answer = await other.describeHandlers();
          return answer.unclaimable.some((u) => u.handler === 'gpu') ? answer : null;
        },
        { what: "the server's reaper to find no live node defining gpu" },
      );
      const endsAt = unclaimable.find((u) => u.handler === 'gpu')!.endsAt;
      expect(queuedOrphanTimeoutMs).toBe(600_000);
      const show = await runtrail(['runs', 'show', id, '--server', url]);
      expect(show.code, show.stderr).toBe(0);
      // Before: nothing between its status and the rest, as if it were about to start.
      expect(show.stdout).toContain(
        'status     queued\nwaiting    no live node defines handler gpu: the run waits until a node that defines it starts; ' +
          `if none does by ${new Date(endsAt).toISOString().replace('T', ' ').slice(0, 19)} UTC, it ends failed / orphaned (the server's queuedOrphanTimeoutMs, 10m, from when it found none)\n`,
      );
    } finally {
      await definer.stop();
      if (replacement) expect(await replacement.stop()).toBe(0);
      own.remove();
    }
  });
});

describe('runtrail runs ls with queued runs held by a concurrency limit', () => {
  it('keeps the rows and --json as they were, and says under the table which limit they wait for', async () => {
    // Labelled, so the listing is these runs whatever the other test left queued or running.
    for (let i = 0; i < 3; i++) {
      const started = await runtrail(['start', 'gpu', '--label', 'batch=ls', '--server', server.url]);
      expect(started.code, started.stderr).toBe(0);
    }
    await waitUntil(async () => ((await client.describeHandlers()).nodes[0]?.slots?.runningByHandler.gpu === 1 ? true : null), {
      what: 'node-a to tell one gpu run running',
    });
    const page = await client.listRuns({ label: 'batch=ls' });
    const queued = page.runs.filter((r) => r.status === 'queued').length;
    expect(queued).toBeGreaterThanOrEqual(2);

    const ls = await runtrail(['runs', 'ls', '--label', 'batch=ls', '--server', server.url]);
    expect(ls.code, ls.stderr).toBe(0);
    // The STATUS column still reads the API's status: a script matching `queued` finds every queued row.
    const statuses = ls.stdout.trim().split('\n').slice(1).map((row) => row.split(/\s+/)[2]);
    expect(statuses.filter((s) => s === 'queued')).toHaveLength(queued);
    // Their places in line, as runs show counts them: these are the newest queued runs of gpu, behind those the other test left.
    const inLine = (await client.countRuns({ status: 'queued', name: 'gpu' })).byStatus.queued;
    expect(ls.stderr).toBe(
      `${queued} queued runs wait for a concurrency limit: gpu (1 at a time on node-a; ${ordinal(inLine - queued + 1)} to ${ordinal(inLine)} in line); \`runtrail runs show ID\` says more\n`,
    );
    // One listed: its place alone.
    const newest = await runtrail(['runs', 'ls', '--label', 'batch=ls', '--limit', '1', '--server', server.url]);
    expect(newest.stderr.split('\n')[0]).toBe(`1 queued run waits for a concurrency limit: gpu (1 at a time on node-a; ${ordinal(inLine)} in line); \`runtrail runs show ID\` says more`);

    const json = await runtrail(['runs', 'ls', '--label', 'batch=ls', '--json', '--server', server.url]);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    const listed = JSON.parse(json.stdout) as typeof page;
    expect(listed.runs.map((r) => Object.keys(r).sort())).toEqual(page.runs.map((r) => Object.keys(r).sort()));

    // A run the filter leaves out, queued between listed ones: the places are a range the listed runs are in, not each one.
    for (const label of [[], ['--label', 'batch=ls']]) {
      const started = await runtrail(['start', 'gpu', ...label, '--server', server.url]);
      expect(started.code, started.stderr).toBe(0);
    }
    const gap = await runtrail(['runs', 'ls', '--label', 'batch=ls', '--server', server.url]);
    expect(gap.stderr).toBe(
      `${queued + 1} queued runs wait for a concurrency limit: gpu (1 at a time on node-a; between ${ordinal(inLine - queued + 1)} and ${ordinal(inLine + 2)} in line); \`runtrail runs show ID\` says more\n`,
    );

    // No queued run listed: no note.
    const running = await runtrail(['runs', 'ls', '--status', 'running', '--server', server.url]);
    expect(running.code, running.stderr).toBe(0);
    expect(running.stderr).toBe('');
  });
});
