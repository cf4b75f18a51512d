import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '@runtrail/test-support';
import { BIN, serve, type ServeProcess } from './harness.js';

/**
 * A terminal whose size was never set says it has 0 columns: `script -qc`
 * run with no terminal of its own (how a CI job gets a TTY), `docker run -t`,
 * a serial console. The status line is cut to the terminal's width; cut to
 * 0, every line a person saw was "…".
 */
let dir: ReturnType<typeof tempDir>;
let server: ServeProcess;

beforeAll(async () => {
  dir = tempDir();
  server = await serve(['--port', '0', '--data-dir', join(dir.path, 'data'), '--log-level', 'warn']);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  dir.remove();
});

const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

describe('a terminal that says it has 0 columns', () => {
  it("shows exec's status line, not a line cut to nothing", async () => {
    const script = join(dir.path, 'job.py');
    writeFileSync(script, 'print(\'::runtrail:: {"type":"progress","data":{"done":3,"total":10,"message":"three of ten"}}\', flush=True)\n');
    const command = [process.execPath, BIN, '--server', server.url, 'exec', '--name', 'zero-columns', '--', 'python3', script].map(quote).join(' ');
    // script(1) with stdin not a terminal gives its pty no size: `stty size` there says "0 0".
    const { stdout } = await promisify(execFile)('script', ['-qec', `stty size; ${command}`, '/dev/null'], { encoding: 'utf8' });
    expect(stdout).toMatch(/^0 0\r?\n/);
    // Lines ended, and status lines redrawn in place (\r, then ESC [2K to clear the line).
    // eslint-disable-next-line no-control-regex -- the escape that clears a redrawn line is what this splits on
    const lines = stdout.split(/\r?\n|\r\u001b\[2K/).filter((line) => line.trim() !== '');
    // The last status line drawn, left in place as the run ended: the progress and the end, within 80 columns.
    const status = lines.filter((line) => line.includes('three of ten') || line.includes('30%')).at(-1);
    expect(status).toMatch(/30% succeeded/);
    expect(status!.length).toBeLessThan(80);
    expect(lines.at(-1)).toMatch(/^runtrail: run \S+ succeeded$/);
  });
});
