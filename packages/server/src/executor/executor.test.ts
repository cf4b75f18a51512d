import { cpSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { groupAlive } from '@runtrail/client/node';
import { RuntrailError, type Run, type RunEvent } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';
import { tempDir, waitUntil } from '../leases/lease.test-kit.js';
import { groupGone } from '@runtrail/test-support/process-tree';

/** The executor against a real server on a real port, real subprocesses and signals. */

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeEach(async () => {
  dir = tempDir('runtrail-exec-');
  server = await startServer({
    port: 0,
    dataDir: dir.path,
    logLevel: 'silent',
    node: 'exec-node',
    concurrency: 2,
    reaperIntervalMs: 100,
    shutdownGraceMs: 500,
  });
  client = new RuntrailClient({ url: server.url });
});

afterEach(async () => {
  await server.close();
  dir.remove();
});

async function ended(id: string, timeoutMs = 10_000): Promise<Run> {
  return waitUntil(
    async () => {
      const run = await client.getRun(id);
      return run.status === 'succeeded' || run.status === 'failed' || run.status === 'cancelled' ? run : null;
    },
    { timeoutMs, what: `run ${id} to end` },
  );
}

async function events(id: string): Promise<RunEvent[]> {
  return (await client.readEvents(id, 0, 5000)).events;
}

/** Resolves when the returned `open()` is called; lets a test hold handlers inside their work. */
function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

describe('executor', () => {
  it('runs the handler of a run created with execute: true, records its events and output, and ends it succeeded', async () => {
    server.define<{ n: number }>('double', async (ctx) => {
      ctx.progress(1, 2, 'halfway');
      ctx.count('items', 2);
      await ctx.call('compute', async () => ctx.input.n * 2);
      return { doubled: ctx.input.n * 2 };
    });
    const queued = await client.startRun({ name: 'double', input: { n: 21 } });
    expect(queued.status).toBe('queued');
    const run = await ended(queued.id);
    expect(run.status).toBe('succeeded');
    expect(run.output).toEqual({ doubled: 42 });
    expect(run.owner).toMatchObject({ kind: 'executor', node: 'exec-node' });
    expect(run.snapshot.counters).toMatchObject({ ok: 1, named: { items: 2 } });
    expect((await events(run.id)).map((e) => e.type)).toEqual([
      'run.started',
      'progress',
      'counter',
      'call.started',
      'call.succeeded',
      'run.succeeded',
    ]);
  });

  it('answers 404 handler_not_found naming the known handlers, and lists them', async () => {
    server.define('a', async () => undefined);
    server.define('b', async () => undefined);
    const err = await client.startRun({ name: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntrailError);
    expect((err as RuntrailError).code).toBe('handler_not_found');
    expect((err as RuntrailError).message).toContain('known handlers: a, b');
    expect(await client.listHandlers()).toEqual(['a', 'b']);
    expect((await client.listRuns({})).runs).toHaveLength(0);
  });

  it('define refuses a handler that is not a function, naming it, and registers nothing', async () => {
    expect(() => server.define('scorer', { run: () => 1 } as never)).toThrow('the handler of "scorer" must be a function (ctx) => output; got object');
    expect(await client.listHandlers()).toEqual([]);
  });

  it('define refuses an input option that is not a schema (a JSON Schema object, a string), naming it, rather than answer every run of it 500', async () => {
    const jsonSchema = { type: 'object', properties: { n: { type: 'number' } } };
    expect(() => server.define('scored', async () => 1, { input: jsonSchema as never })).toThrow(
      'the input of "scored" must be a zod schema (z.object({ … })) or anything with safeParse(value); got an object without safeParse (it looks like a JSON Schema: define takes the zod schema, and GET /handlers reports its JSON Schema)',
    );
    expect(() => server.define('scored', async () => 1, { input: 'number' as never })).toThrow('the input of "scored" must be a zod schema (z.object({ … })) or anything with safeParse(value); got a string without safeParse');
    expect(await client.listHandlers()).toEqual([]);
    const started = await client.startRun({ name: 'scored', input: { n: 1 } }).catch((e: unknown) => e);
    expect(RuntrailError.isCode(started, 'handler_not_found')).toBe(true);
  });

  it('define refuses a handler name that is empty, too long, or holds a control character or line separator, naming it escaped, and registers nothing', async () => {
    const refused: Array<[string, string]> = [
      ['', 'the handler name "" is refused: Too small: expected string to have >=1 characters'],
      ['x'.repeat(201), `the handler name "${'x'.repeat(60)}"… (201 characters) is refused: Too big: expected string to have <=200 characters`],
      ['red\u001b[31m', 'the handler name "red\\u001b[31m" is refused: must not contain NUL or other control characters'],
      ['two\nlines', 'the handler name "two\\nlines" is refused: must not contain NUL or other control characters'],
      ['del\u007f', 'the handler name "del\\u007f" is refused: must not contain NUL or other control characters'],
      ['csi\u009b2J', 'the handler name "csi\\u009b2J" is refused: must not contain NUL or other control characters'],
      ['para\u2029graph', 'the handler name "para\\u2029graph" is refused: must not contain a line or paragraph separator (U+2028, U+2029)'],
    ];
    for (const [name, message] of refused) expect(() => server.define(name, async () => 1), JSON.stringify(name)).toThrow(message);
    expect(await client.listHandlers()).toEqual([]);
    // What a run may be named, a handler may be: the longest, and any printable text.
    server.define('y'.repeat(200), async () => 1);
    server.define('évaluation — 評価 😀', async () => 1);
    expect(await client.listHandlers()).toEqual(['y'.repeat(200), 'évaluation — 評価 😀']);
  });

  it('refuses, when it is created, a run whose input the handler\'s schema refuses (400 naming the fields); a valid one runs', async () => {
    const { z } = await import('zod');
    server.define<{ n: number }>('square', async (ctx) => ctx.input.n * ctx.input.n, { input: z.strictObject({ n: z.number().int() }) });
    for (const [input, message] of [
      [{ n: 'three' }, 'the input of a "square" run: input.n: Invalid input: expected number, received string'],
      [{ n: 3, m: 1 }, 'the input of a "square" run: input: Unrecognized key: "m"'],
      [undefined, 'the input of a "square" run: input: Invalid input: expected object, received undefined'],
    ] as const) {
      const err = await client.startRun({ name: 'square', ...(input === undefined ? {} : { input }) }).catch((e: unknown) => e);
      expect(RuntrailError.isCode(err, 'invalid_request'), JSON.stringify(input)).toBe(true);
      expect((err as RuntrailError).message).toBe(message);
    }
    expect((await client.listRuns({})).runs).toHaveLength(0);
    const run = await ended((await client.startRun({ name: 'square', input: { n: 7 } })).id);
    expect(run.output).toBe(49);
  });

  it("GET /handlers reports each handler's input as JSON Schema, or why there is none, and keeps its other fields", async () => {
    const { z } = await import('zod');
    server.define('square', async () => 1, { input: z.strictObject({ n: z.number().int().min(0).default(3) }) });
    server.define('free', async () => 1);
    server.define('dated', async () => 1, { input: z.object({ at: z.date() }) });
    server.define('hand-checked', async () => 1, { input: { safeParse: () => ({ success: true }) as const } });
    const body = await client.describeHandlers();
    expect(body.handlers).toEqual(['dated', 'free', 'hand-checked', 'square']);
    expect(body.nodes.map((n) => n.node)).toEqual(['exec-node']);
    expect(body).toMatchObject({ queuedOrphanTimeoutMs: expect.any(Number), unclaimable: [] });
    expect(body.inputs).toEqual([
      { handler: 'dated', nodes: ['exec-node'], input: { kind: 'unconvertible', reason: 'Date cannot be represented in JSON Schema' } },
      { handler: 'free', nodes: ['exec-node'], input: { kind: 'any' } },
      { handler: 'hand-checked', nodes: ['exec-node'], input: { kind: 'unconvertible', reason: 'its schema is not a zod 4 schema, so it has no JSON Schema here' } },
      {
        handler: 'square',
        nodes: ['exec-node'],
        input: {
          kind: 'schema',
          schema: {
            $schema: 'https://json-schema.org/draft/2020-12/schema',
            type: 'object',
            properties: { n: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 3 } },
            additionalProperties: false,
          },
        },
      },
    ]);
  });

  it('gives a handler its own copy of a large input: it may change it, and the run\'s input stays as created', async () => {
    // Large enough that the store shares one frozen parse of it (ParsedInputs).
    const input = { items: Array.from({ length: 500 }, (_, i) => ({ i, done: false, prompt: `item ${i} `.repeat(6) })) };
    server.define<typeof input>('mark', async (ctx) => {
      for (const item of ctx.input.items) item.done = true;
      ctx.input.items.push({ i: 500, done: true, prompt: 'added' });
      return ctx.input.items.filter((item) => item.done).length;
    });
    const run = await ended((await client.startRun({ name: 'mark', input })).id);
    expect(run.error).toBeNull();
    expect(run.output).toBe(501);
    expect(run.input).toEqual(input);
  });

  it('records a handler\'s event data as it was at the call, though the handler changes the object before it is sent', async () => {
    server.define('reuse', async (ctx) => {
      const state = { step: 0 };
      for (let step = 1; step <= 3; step++) {
        state.step = step;
        ctx.event('x.state', state);
      }
      state.step = 99;
    });
    const run = await ended((await client.startRun({ name: 'reuse' })).id);
    expect((await events(run.id)).filter((e) => e.type === 'x.state').map((e) => e.data)).toEqual([{ step: 1 }, { step: 2 }, { step: 3 }]);
  });

  it('fails the run with the error a handler throws', async () => {
    server.define('boom', async () => {
      throw new Error('model endpoint returned 500');
    });
    const run = await ended((await client.startRun({ name: 'boom' })).id);
    expect(run.status).toBe('failed');
    expect(run.error).toEqual({ kind: 'error', message: 'model endpoint returned 500' });
  });

  it("a handler's bug is told with its error's class in the run's error and its stack in the run's log", async () => {
    server.define<{ config?: { model: string } }>('buggy', async (ctx) => ctx.input.config!.model);
    const run = await ended((await client.startRun({ name: 'buggy', input: {} })).id);
    expect(run.error).toEqual({ kind: 'error', message: "TypeError: Cannot read properties of undefined (reading 'model')" });
    const stack = run.snapshot.logs.find((l) => l.level === 'error')?.message ?? '';
    expect(stack).toMatch(/^TypeError: Cannot read properties of undefined \(reading 'model'\)\n\s+at .*executor\.test\.ts:\d+/);

    // runtrail's own errors read as they are: they say what is wrong without a class name.
    server.define('no-command', (ctx) => ctx.exec('runtrail-test-no-such-command', []));
    server.define('bad-progress', async (ctx) => ctx.progress(-1));
    const missing = await ended((await client.startRun({ name: 'no-command' })).id);
    expect(missing.error?.message).toBe(
      'could not start runtrail-test-no-such-command: no program named runtrail-test-no-such-command in any folder of its PATH (give a path to run one that is not on it: ./runtrail-test-no-such-command)',
    );
    const bad = await ended((await client.startRun({ name: 'bad-progress' })).id);
    expect(bad.error?.message).toMatch(/^invalid progress event: progress\[0\]\.data\.done/);
    server.define('never-ready', (ctx) => ctx.waitFor(() => null, { intervalMs: 10, timeoutMs: 50, label: 'render' }));
    const waited = await ended((await client.startRun({ name: 'never-ready' })).id);
    expect(waited.error).toEqual({ kind: 'timeout', message: expect.stringMatching(/^render was not ready after 50 ms/) });
  });

  it('a handler that returns something that is not JSON (a cycle, a BigInt) fails its run at once saying so, and frees its slot', async () => {
    server.define('cyclic', async () => {
      const out: Record<string, unknown> = { score: 1 };
      out.self = out;
      return out;
    });
    server.define('big', async () => ({ n: 10n }));
    const cyclic = await ended((await client.startRun({ name: 'cyclic' })).id);
    expect(cyclic.error?.message).toMatch(/^the handler's return value cannot be stored as the run's output: it is not JSON \(Converting circular structure/);
    const big = await ended((await client.startRun({ name: 'big' })).id);
    expect(big.error?.message).toBe("the handler's return value cannot be stored as the run's output: it is not JSON (Do not know how to serialize a BigInt)");
    expect(server.executor.running).toBe(0);
  });

  it('a handler that returns what JSON would change or drop (a Map, a Set, NaN, a function) fails its run naming the field, not as an executor failure', async () => {
    server.define('scores-map', async () => ({ perDataset: new Map([['gsm8k', 0.7]]) }));
    server.define('nan', async () => ({ accuracy: Number.NaN }));
    server.define('uncalled', async () => () => ({ score: 1 }));
    const map = await ended((await client.startRun({ name: 'scores-map' })).id);
    expect(map.error).toEqual({
      kind: 'error',
      message: "the handler's return value cannot be stored as the run's output: output.perDataset is a Map, which JSON writes as {} (its entries lost): send Object.fromEntries(map)",
    });
    const nan = await ended((await client.startRun({ name: 'nan' })).id);
    expect(nan.error?.message).toBe("the handler's return value cannot be stored as the run's output: output.accuracy is NaN, which JSON cannot hold (it would be stored as null)");
    // Stored as nothing, the run would have succeeded with no output and no word why.
    const uncalled = await ended((await client.startRun({ name: 'uncalled' })).id);
    expect(uncalled.status).toBe('failed');
    expect(uncalled.error?.message).toBe("the handler's return value cannot be stored as the run's output: it is a function, which JSON cannot hold (return what it computes)");
    expect(server.executor.running).toBe(0);
  });

  it('a handler that throws undefined or null fails its run saying so, not with the bare word', async () => {
    server.define('throws-nothing', async () => {
      throw undefined;
    });
    server.define('rejects-null', () => Promise.reject(null));
    const nothing = await ended((await client.startRun({ name: 'throws-nothing' })).id);
    expect(nothing.error).toEqual({ kind: 'error', message: 'the handler threw undefined, not an Error: there is no message or stack to show' });
    const rejected = await ended((await client.startRun({ name: 'rejects-null' })).id);
    expect(rejected.error?.message).toBe('the handler threw null, not an Error: there is no message or stack to show');
  });

  it('runs at most `concurrency` handlers at once; the others wait queued and run after', async () => {
    const release = gate();
    let inside = 0;
    let most = 0;
    server.define('held', async () => {
      most = Math.max(most, ++inside);
      await release.wait;
      inside--;
    });
    const ids = await Promise.all([1, 2, 3, 4].map(async () => (await client.startRun({ name: 'held' })).id));
    await waitUntil(async () => (await client.listRuns({ status: 'running' })).runs.length === 2, { what: '2 running' });
    expect((await client.listRuns({ status: 'queued' })).runs).toHaveLength(2);
    release.open();
    for (const id of ids) expect((await ended(id)).status).toBe('succeeded');
    expect(most).toBe(2);
  });

  it('a cancel reaches the handler at once through ctx.signal and the run ends cancelled with the reason', async () => {
    const inside = gate();
    server.define('waits', async (ctx) => {
      inside.open();
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    // A 24 h lease: the next heartbeat is 8 h away, so the run can only end
    // within ended()'s deadline if the cancel reaches the handler in-process.
    const { id } = await client.startRun({ name: 'waits', leaseTtlMs: 24 * 3600_000 });
    await inside.wait;
    await client.cancelRun(id, 'no longer needed');
    const run = await ended(id);
    expect(run.status).toBe('cancelled');
    expect(run.error?.message).toBe('no longer needed');
  });

  it('a run cancelled between its claim and its handler\'s start is ended cancelled without calling the handler', async () => {
    let called = 0;
    server.define('never-called', async () => {
      called++;
    });
    // The executor reads the run once more before it calls the handler: the cancel lands just before that read.
    const find = server.runs.find.bind(server.runs);
    server.runs.find = async (id: string) => {
      server.runs.find = find;
      await server.runs.cancel(id, 'changed my mind');
      return find(id);
    };
    const { id } = await client.startRun({ name: 'never-called', leaseTtlMs: 24 * 3600_000 });
    const run = await ended(id);
    expect(run.status).toBe('cancelled');
    expect(run.error?.message).toBe('changed my mind');
    // Before: run.started, then the handler called with a signal already aborted (its 'abort' event never comes).
    expect(called).toBe(0);
    expect((await events(id)).map((e) => e.type)).not.toContain('run.started');
  });

  it('a cancelled run stops its handler and its subprocess (which ignores SIGTERM) within the grace period', async () => {
    let pgid = 0;
    server.define('shell', async (ctx) => {
      await ctx.exec('sh', ['-c', `trap '' TERM; echo ready; sleep 60 & wait`], { killGraceMs: 500 });
    });
    const { id } = await client.startRun({ name: 'shell' });
    await waitUntil(async () => (await events(id)).some((e) => e.type === 'log' && (e.data as { message: string }).message === 'ready'), {
      what: 'the subprocess to start',
    });
    const meta = (await client.getRun(id)).snapshot.meta as { exec: { pgid: number } };
    pgid = meta.exec.pgid;
    expect(groupAlive(pgid)).toBe(true);
    await client.cancelRun(id, 'stop the shell');
    const run = await ended(id);
    expect(run.status).toBe('cancelled');
    expect(groupAlive(pgid)).toBe(false);
    await waitUntil(() => groupGone(pgid), { timeoutMs: 10_000, what: `group ${pgid} to disappear` });
    const exec = (run.snapshot.meta as { exec: Record<string, unknown> }).exec;
    expect(exec).toMatchObject({ reason: 'aborted', killedWith: 'SIGKILL', signal: 'SIGKILL' });
  });

  it('a subprocess that prints nothing for idleTimeoutMs is killed with its grandchildren and the run fails timeout with the reason', async () => {
    server.define('quiet', async (ctx) => {
      const script = `(trap '' TERM; sleep 60) & echo "::runtrail:: {\\"type\\":\\"meta\\",\\"data\\":{\\"grandchild\\":$!}}"; sleep 60`;
      await ctx.exec('sh', ['-c', script], { idleTimeoutMs: 400, killGraceMs: 300 });
    });
    const run = await ended((await client.startRun({ name: 'quiet' })).id);
    expect(run.status).toBe('failed');
    expect(run.error?.kind).toBe('timeout');
    // sh itself ends on SIGTERM; the grandchild that ignores it is what needed SIGKILL.
    expect(run.error?.message).toMatch(
      /^sh -c .* printed nothing for 400 ms \(idle timeout\): sent SIGTERM, which ended it; then SIGKILL after a 300 ms grace to what it left running$/,
    );
    const meta = run.snapshot.meta as { exec: { pgid: number }; grandchild: number };
    expect(meta.grandchild).toBeGreaterThan(0);
    expect(groupAlive(meta.exec.pgid)).toBe(false);
    await waitUntil(() => groupGone(meta.exec.pgid), { timeoutMs: 10_000, what: 'the group to disappear' });
    const log = run.snapshot.artifacts.find((a) => a.name === 'output.log');
    expect(log?.uri).toMatch(/^file:.*\.log$/);
  });

  it('a command that times out says what was done, in order: SIGTERM, and SIGKILL only when the grace ran out', async () => {
    server.define('obeys-term', (ctx) => ctx.exec('sleep', ['30'], { timeoutMs: 300, killGraceMs: 5_000 }));
    server.define('ignores-term', (ctx) => ctx.exec('sh', ['-c', `trap '' TERM; sleep 30`], { timeoutMs: 1_500, killGraceMs: 300 }));
    const [obeys, ignores] = await Promise.all(['obeys-term', 'ignores-term'].map(async (name) => ended((await client.startRun({ name })).id)));
    expect(obeys!.error).toEqual({ kind: 'timeout', message: 'sleep 30 timed out after 300 ms: sent SIGTERM, which ended it' });
    expect(ignores!.error).toEqual({
      kind: 'timeout',
      message: `sh -c 'trap '\\'''\\'' TERM; sleep 30' timed out after 1.5 s: sent SIGTERM, then SIGKILL after a 300 ms grace`,
    });
    // What meta.exec records agrees: the strongest signal sent, and the one that ended it.
    expect((obeys!.snapshot.meta as { exec: object }).exec).toMatchObject({ reason: 'timeout', killedWith: 'SIGTERM', signal: 'SIGTERM' });
    expect((ignores!.snapshot.meta as { exec: object }).exec).toMatchObject({ reason: 'timeout', killedWith: 'SIGKILL', signal: 'SIGKILL' });
  });

  it("a failed command's run error is a one-line headline, however many lines its command has, then its last stderr lines; the output log has the whole command line", async () => {
    const script = ['echo "loading rows" >&2', 'echo "  row 3 is empty" >&2', 'echo "ValueError: bad row 3" >&2', 'exit 3'].join('\n');
    server.define('multi-line', (ctx) => ctx.exec('sh', ['-c', script]));
    const run = await ended((await client.startRun({ name: 'multi-line' })).id);
    expect(run.error).toEqual({
      kind: 'error',
      message: [
        // No traceback printed, so no exception line in the headline: the last stderr lines below say it.
        `sh -c 'echo "loading rows" >&2 … exited with code 3 (the whole command line is in meta.exec.command and the output log)`,
        '',
        'last 3 lines of stderr:',
        'loading rows',
        '  row 3 is empty',
        'ValueError: bad row 3',
      ].join('\n'),
    });
    expect((run.snapshot.meta as { exec: { command: string } }).exec.command).toBe(`sh -c '${script}'`);
    const log = await (await client.fetchLog(run.id)).text();
    expect(log).toBe(['[stderr] loading rows', '[stderr]   row 3 is empty', '[stderr] ValueError: bad row 3', `[runtrail] sh -c '${script}' exited with code 3`, ''].join('\n'));
  });

  it("a relative program is looked up in the working directory, a relative cwd taken from the server's; one that is missing is named with the folder looked in", async () => {
    const scripts = tempDir('runtrail-exec-cwd-');
    try {
      writeFileSync(join(scripts.path, 'hello.sh'), '#!/bin/sh\necho "hello from $(pwd)"\n', { mode: 0o755 });
      writeFileSync(join(scripts.path, 'no-interpreter.sh'), '#!/no/such/interpreter\n', { mode: 0o755 });
      const fromServer = relative(process.cwd(), scripts.path);
      server.define('relative', async (ctx) => {
        const outcomes: string[] = [];
        for (const [command, cwd] of [
          ['./hello.sh', fromServer],
          ['./missing.sh', fromServer],
          ['./missing.sh', undefined],
          ['./no-interpreter.sh', scripts.path],
        ] as const) {
          try {
            await ctx.exec(command, [], cwd === undefined ? {} : { cwd });
            outcomes.push('ran');
          } catch (err) {
            outcomes.push((err as Error).message);
          }
        }
        return outcomes;
      });
      const run = await ended((await client.startRun({ name: 'relative' })).id);
      const lookedIn = (dir: string) => `a relative program is looked up in the command's working directory, ${dir} (its cwd option, else the server's own working directory)`;
      expect(run.output).toEqual([
        'ran',
        `could not start ./missing.sh: there is no ${join(scripts.path, 'missing.sh')}: ${lookedIn(scripts.path)}`,
        `could not start ./missing.sh: there is no ${join(process.cwd(), 'missing.sh')}: ${lookedIn(process.cwd())}`,
        `could not start ./no-interpreter.sh: ${join(scripts.path, 'no-interpreter.sh')} exists, but the interpreter its first line (#!) names does not`,
      ]);
      expect(run.snapshot.logs.map((l) => l.message)).toContain(`hello from ${scripts.path}`);
    } finally {
      scripts.remove();
    }
  });

  it("enforces a run's total timeoutMs on the handler: ctx.signal aborts and the run fails timeout", async () => {
    server.define('slow', async (ctx) => {
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    const run = await ended((await client.startRun({ name: 'slow', timeoutMs: 300 })).id);
    expect(run.status).toBe('failed');
    expect(run.error?.kind).toBe('timeout');
    expect(run.error?.message).toContain('total timeout of 300 ms');
  });

  it('a total timeoutMs of 25 days (past what setTimeout holds) does not end the run at once', async () => {
    let started!: () => void;
    const handlerStarted = new Promise<void>((resolve) => (started = resolve));
    server.define('long', async (ctx) => {
      started();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
    });
    const { id } = await client.startRun({ name: 'long', timeoutMs: 25 * 24 * 3600_000 });
    await handlerStarted;
    // Node fires a timer of more than 2^31-1 ms after 1 ms: the run failed "timeout" as it started.
    await client.cancelRun(id, 'done looking');
    const run = await ended(id);
    expect(run.status).toBe('cancelled');
    expect(run.error?.kind).toBe('cancelled');
  });

  it('ctx.child opens a linked child run; a child left open ends when its parent ends', async () => {
    server.define('parent', async (ctx) => {
      const done = await ctx.child('step-1');
      done.progress(1, 1);
      await done.succeed({ ok: true });
      const left = await ctx.child('step-2');
      left.log('started and forgotten');
      await left.flush();
      return 'parent done';
    });
    const parent = await ended((await client.startRun({ name: 'parent' })).id);
    expect(parent.status).toBe('succeeded');
    const children = (await client.listRuns({ parentId: parent.id })).runs;
    const byName = Object.fromEntries(children.map((c) => [c.name, c]));
    expect(byName['step-1']).toMatchObject({ status: 'succeeded', parentId: parent.id, output: { ok: true } });
    expect(byName['step-2']).toMatchObject({ status: 'failed', error: { kind: 'orphaned' } });
    expect(byName['step-2']!.error!.message).toContain(`parent run ${parent.id}`);
  });

  it("cancelling a parent cancels the child runs its handler had open, with the parent's reason", async () => {
    const inside = gate();
    server.define('pipeline', async (ctx) => {
      const child = await ctx.child('dataset a');
      child.progress(1, 5);
      await child.flush();
      inside.open();
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    const { id } = await client.startRun({ name: 'pipeline' });
    await inside.wait;
    await client.cancelRun(id, 'wrong model');
    expect((await ended(id)).status).toBe('cancelled');
    const [child] = (await client.listRuns({ parentId: id })).runs;
    expect(child).toMatchObject({ status: 'cancelled', error: { kind: 'cancelled', message: `its parent run ${id} was cancelled: wrong model` } });
  });

  it('ctx.waitFor polls an external job, each poll visible on the run, and returns its result', async () => {
    let polls = 0;
    server.define('await-job', async (ctx) =>
      ctx.waitFor(() => (++polls < 3 ? null : { image: 'out.png' }), { intervalMs: 10, timeoutMs: 5_000, label: 'render' }),
    );
    const run = await ended((await client.startRun({ name: 'await-job' })).id);
    expect(run.output).toEqual({ image: 'out.png' });
    expect(run.snapshot.counters.named['polls: render']).toBe(2);
  });

  it("a ctx.exec command reads RUNTRAIL_RUN_ID and RUNTRAIL_URL (overriding the handler's env) and appends to its own run", async () => {
    const append = `curl -sf -XPOST "$RUNTRAIL_URL/api/v1/runs/$RUNTRAIL_RUN_ID/events" -H 'content-type: application/json' -d '{"events":[{"type":"counter","data":{"name":"from_child","delta":1}}]}'`;
    server.define('child-appends', (ctx) => ctx.exec('sh', ['-c', `echo "run=$RUNTRAIL_RUN_ID url=$RUNTRAIL_URL"; ${append}`], { env: { RUNTRAIL_RUN_ID: 'not-mine' } }));
    const { id } = await client.startRun({ name: 'child-appends' });
    const run = await ended(id);
    expect(run.status).toBe('succeeded');
    expect(run.snapshot.logs.map((l) => l.message)).toContain(`run=${id} url=${server.url}`);
    expect(run.snapshot.counters.named.from_child).toBe(1);
  });


  /** `deaf` never returns, whatever its signal says (`inside` opens once two of it run); `quick` returns at once. */
  function defineDeafAndQuick() {
    const inside = gate();
    let count = 0;
    server.define('deaf', async () => {
      if (++count === 2) inside.open();
      await new Promise(() => undefined);
    });
    server.define('quick', async () => 'ran');
    return inside;
  }

  it('a cancelled handler that ignores its signal: the run ends cancelled after the grace period, saying so, and its slot runs the next run', async () => {
    const inside = defineDeafAndQuick();
    // A 24 h lease: the reaper cannot be the one that ends these.
    const deaf = await Promise.all([1, 2].map(async () => (await client.startRun({ name: 'deaf', leaseTtlMs: 24 * 3600_000 })).id));
    await inside.wait;
    const next = await client.startRun({ name: 'quick' });
    for (const id of deaf) await client.cancelRun(id, 'not needed');
    for (const id of deaf) {
      const run = await ended(id);
      expect(run.status).toBe('cancelled');
      expect(run.error?.message).toBe('not needed; the handler did not stop within the grace period of 500 ms, so its run was ended without it');
    }
    // Both slots were held by the deaf handlers: this runs only if they were freed.
    expect(await ended(next.id)).toMatchObject({ status: 'succeeded', output: 'ran' });
    expect(server.executor.running).toBe(0);
  });

  it('a cancel racing a handler that returns: every run ends once, as one or the other, and every slot is freed (60 runs)', async () => {
    server.define('racy', async (ctx) => {
      // Returns at about the moment the cancel lands; one in three ignores its signal.
      const ignores = (ctx.input as { i: number }).i % 3 === 0;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, (ctx.input as { i: number }).i % 7);
        if (!ignores) ctx.signal.addEventListener('abort', () => (clearTimeout(timer), reject(ctx.signal.reason)), { once: true });
      });
      return 'done';
    });
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const { id } = await client.startRun({ name: 'racy', input: { i } });
      ids.push(id);
      void client.cancelRun(id, 'race').catch((err: unknown) => {
        // The run may have ended first: that is one of the two outcomes raced for.
        if (!RuntrailError.isCode(err, 'run_already_terminal')) throw err;
      });
    }
    for (const id of ids) {
      const run = await ended(id);
      expect(['succeeded', 'cancelled'], id).toContain(run.status);
      expect((await events(id)).filter((e) => e.type === 'run.succeeded' || e.type === 'run.cancelled' || e.type === 'run.failed')).toHaveLength(1);
    }
    await waitUntil(() => server.executor.running === 0, { what: 'every slot to be freed' });
  }, 60_000);

  it('handlers that ignore their signal past a timeout or a stall end free their slots for the runs queued behind them', async () => {
    const inside = defineDeafAndQuick();
    const timedOut = await client.startRun({ name: 'deaf', timeoutMs: 200, leaseTtlMs: 24 * 3600_000 });
    const stalled = await client.startRun({ name: 'deaf', stallTimeoutMs: 200, failOnStall: true, leaseTtlMs: 24 * 3600_000 });
    await inside.wait;
    const next = await client.startRun({ name: 'quick' });
    expect((await ended(timedOut.id)).error?.kind).toBe('timeout');
    expect((await ended(stalled.id)).error?.kind).toBe('stalled');
    expect(await ended(next.id)).toMatchObject({ status: 'succeeded', output: 'ran' });
  });

  it('a Python script that prints with plain print() is seen as it prints, so an idle timeout does not kill it', async () => {
    // As on a machine whose environment does not set it (this one's may).
    const before = process.env.PYTHONUNBUFFERED;
    delete process.env.PYTHONUNBUFFERED;
    try {
      server.define('score', (ctx) =>
        // 6 s of printing every half second, past a 4 s idle timeout: printed only at exit (buffered), it
        // would be killed; 4 s leaves a loaded machine's Python its start-up before the first line.
        ctx.exec('python3', ['-c', 'import time\nfor i in range(12):\n    print(f"scored {i}")\n    time.sleep(0.5)'], { idleTimeoutMs: 4_000 }),
      );
      const run = await ended((await client.startRun({ name: 'score' })).id);
      expect(run.error).toBeNull();
      expect(run.snapshot.logs.map((l) => l.message).filter((m) => m.startsWith('scored'))).toEqual(Array.from({ length: 12 }, (_, i) => `scored ${i}`));
    } finally {
      if (before !== undefined) process.env.PYTHONUNBUFFERED = before;
    }
  });

  it('shutdown is bounded though the end of a run cannot be written (its database file was replaced): it does not wait out the SDK\'s retries', async () => {
    const inside = gate();
    server.define('cooperative', async (ctx) => {
      inside.open();
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    await client.startRun({ name: 'cooperative' });
    await inside.wait;
    const file = join(dir.path, 'runtrail.db');
    cpSync(file, `${file}.copy`);
    renameSync(`${file}.copy`, file);
    const started = Date.now();
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      server.executor.shutdown().then(() => 'stopped'),
      new Promise((resolve) => (deadline = setTimeout(() => resolve('still waiting after 20 s'), 20_000))),
    ]);
    clearTimeout(deadline);
    expect(outcome).toBe('stopped');
    // The grace (500 ms) and the subprocesses' kill grace (5 s): not the SDK's 5 minutes of retries.
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);

  it('graceful shutdown asks handlers to stop, ends the ones that do not as interrupted, and leaves nothing running', async () => {
    const started = gate();
    let count = 0;
    server.define('cooperative', async (ctx) => {
      if (++count === 2) started.open();
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
    });
    server.define('stubborn', async () => {
      if (++count === 2) started.open();
      await new Promise(() => undefined);
    });
    const a = await client.startRun({ name: 'cooperative' });
    const b = await client.startRun({ name: 'stubborn' });
    await started.wait;
    // Resolves although 'stubborn' never stops: shutdown waits the grace period, not for the handler.
    await server.executor.shutdown();
    const ra = await client.getRun(a.id);
    const rb = await client.getRun(b.id);
    expect(ra.error).toEqual({ kind: 'interrupted', message: 'node exec-node is shutting down' });
    expect(rb.error?.kind).toBe('interrupted');
    expect(rb.error?.message).toContain('did not stop within the grace period of 500 ms');
    expect((await client.listRuns({ status: 'running' })).runs).toHaveLength(0);
  });
});
