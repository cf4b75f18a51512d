import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir } from '@runtrail/test-support';
import { runtrail as run, serve, type ServeProcess } from './harness.js';

/**
 * A value longer than the API takes (a name pasted from a log, a reason
 * written as a paragraph) is refused naming the flag as the user typed it,
 * before anything is done, rather than by the server naming its own field
 * (`invalid request body: name: Too big…`, `invalid query: nameContains`).
 */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;

beforeAll(async () => {
  dir = tempDir();
  server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'warn']);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

// --server first: after exec's `--` it would be the command's.
const runtrail = (args: string[]) => run(['--server', server.url, ...args]);
const long = (n: number, c = 'x') => c.repeat(n);

describe('values longer than the API takes', () => {
  it('are refused naming the flag and the limit, exit 2, with no run made and no command run; one at the limit is taken', async () => {
    const ran = join(dir.path, 'ran');
    const { id } = await new RuntrailClient({ url: server.url }).createRun({ name: 'to-cancel' });
    const cases = [
      { args: ['exec', '--name', long(3000), '--', 'touch', ran], error: '--name is 3000 characters long; at most 200' },
      { args: ['exec', '--label', `team=${long(600)}`, '--', 'touch', ran], error: '--label team is 600 characters long; at most 500' },
      { args: ['start', 'demo-pipeline', '--label', `${long(300)}=v`], error: 'a --label key is 300 characters long; at most 100' },
      { args: ['cancel', id, '--reason', long(9000)], error: '--reason is 9000 characters long; at most 8192' },
      { args: ['runs', 'ls', '--search', long(300)], error: '--search is 300 characters long; at most 200' },
      { args: ['runs', 'ls', '--name', long(300)], error: '--name is 300 characters long; at most 200' },
      { args: ['prune', '--older-than', '1d', '--name', long(300), '--dry-run'], error: '--name is 300 characters long; at most 200' },
      { args: ['tokens', 'create', long(300), '--scope', 'viewer'], error: 'NAME is 300 characters long; at most 200' },
    ];
    for (const { args, error } of cases) {
      const result = await runtrail(args);
      expect({ args: args.slice(0, 2), code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
        args: args.slice(0, 2),
        code: 2,
        stdout: '',
        stderr: `runtrail: invalid_request: ${error}\n`,
      });
    }
    expect(existsSync(ran)).toBe(false);
    const client = new RuntrailClient({ url: server.url });
    // Only the run made above: neither exec nor start made one, and the cancel was not sent.
    expect((await client.listRuns({})).runs.map((r) => [r.name, r.status])).toEqual([['to-cancel', 'running']]);

    // At the limit, it is taken.
    const name = long(200, 'n');
    const result = await runtrail(['exec', '--name', name, '--', 'true']);
    expect(result.code).toBe(0);
    expect((await runtrail(['runs', 'ls', '--name', name, '--json'])).stdout).toContain(`"name": "${name}"`);
  });
});
