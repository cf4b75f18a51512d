import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '@runtrail/protocol';
import { testScope, type TestServer } from '@runtrail/test-support/server';
import { RuntrailClient } from '../runtrail-client.js';
import { currentRun } from './current-run.js';

/**
 * A Node script under `runtrail exec` reports into the run exec made, as a
 * Python one does with runtrail.current_run(): the real CLI and a real
 * script (the built packages), against a real server.
 */

const CLI = fileURLToPath(new URL('../../../cli/bin/runtrail.js', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../../test/fixtures/current-run.mjs', import.meta.url));

const { server: startServer } = testScope();
let server: TestServer;
let client: RuntrailClient;

beforeEach(async () => {
  server = await startServer();
  client = new RuntrailClient({ url: server.url });
});

function exec(how: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'exec', '--server', server.url, '--name', `current run ${how}`, '--', process.execPath, SCRIPT, how], {
    env: { ...process.env, RUNTRAIL_RUN_ID: '', NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

async function theRun(how: string) {
  const { runs } = await client.listRuns({ name: `current run ${how}` });
  expect(runs).toHaveLength(1);
  const run = await client.getRun(runs[0]!.id);
  const events: RunEvent[] = [];
  for (;;) {
    const page = await client.readEvents(run.id, events.at(-1)?.seq ?? 0);
    events.push(...page.events);
    if (page.events.length === 0 || events.at(-1)!.seq >= page.seq) break;
  }
  return { run, events };
}

describe('currentRun() under runtrail exec', () => {
  it('adds its events to the run exec made; exec ends it, and refuses the script ending it itself', async () => {
    const result = await exec('succeed');
    expect(result.code, result.stderr).toBe(0);
    const { run, events } = await theRun('succeed');
    expect(result.stdout).toContain(`succeed refused: run ${run.id} belongs to the process that runs this one (runtrail exec, a handler)`);
    expect(run.status).toBe('succeeded');
    expect(run.snapshot.progress).toMatchObject({ done: 300, total: 300 });
    expect(run.snapshot.metrics.loss).toMatchObject({ last: 0.5 });
    expect(events.filter((e) => e.type === 'progress')).toHaveLength(300);
  });

  it('a script that crashes with events still queued stores them before exec ends the run failed', async () => {
    const result = await exec('crash');
    expect(result.code).toBe(1);
    const { run, events } = await theRun('crash');
    expect(result.stderr).toContain(`runtrail: run ${run.id}: stored its 303 unsent events; the process that owns it ends it`);
    expect(run.status).toBe('failed');
    // exec names the exception, from the stack trace Node printed; the stack itself is in the run's log too.
    expect(run.snapshot.terminal?.error?.message).toMatch(/ exited with code 1: Error: bad batch\n/);
    expect(events.some((e) => e.type === 'log' && (e.data as { message: string }).message.startsWith('Error: bad batch\n    at '))).toBe(true);
    expect(events.filter((e) => e.type === 'progress').map((e) => (e.data as { done: number }).done)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(events.filter((e) => e.type === 'metric')).toHaveLength(1);
  });

  it('against a server with auth on and no RUNTRAIL_TOKEN, says the variable is not set (not an SDK option its user never wrote)', async () => {
    const authed = await startServer({ adminToken: 'current-run-admin-token-0123456789' });
    const saved = { id: process.env.RUNTRAIL_RUN_ID, url: process.env.RUNTRAIL_URL, token: process.env.RUNTRAIL_TOKEN };
    Object.assign(process.env, { RUNTRAIL_RUN_ID: '01a22003-8dc8-7235-9aef-0608e89bc08d', RUNTRAIL_URL: authed.url });
    delete process.env.RUNTRAIL_TOKEN;
    try {
      await expect(currentRun({ startTimeoutMs: 0 })).rejects.toMatchObject({
        code: 'unauthorized',
        message: 'this server needs a token: send Authorization: Bearer <token> (no token was given to this client: currentRun() sends the token in RUNTRAIL_TOKEN, which is not set)',
      });
    } finally {
      for (const [name, value] of [['RUNTRAIL_RUN_ID', saved.id], ['RUNTRAIL_URL', saved.url], ['RUNTRAIL_TOKEN', saved.token]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('is null in a process that runs under no run', async () => {
    expect(process.env.RUNTRAIL_RUN_ID ?? '').toBe('');
    expect(await currentRun()).toBeNull();
  });
});
