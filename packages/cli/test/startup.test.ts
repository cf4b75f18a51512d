import { describe, expect, it } from 'vitest';
import { DEFAULT_COLLECT_INTERVAL_MS, DEFAULT_KILL_GRACE_MS } from '@runtrail/client/node';
import { createProgram } from '../src/program.js';
import { freePort, recordLoads, runtrail } from './harness.js';

/** `runtrail ARGS` as a user runs it, and the URLs of the modules it loaded. */
async function modulesLoadedBy(args: string[]): Promise<{ code: number | null; stderr: string; loaded: string[] }> {
  const loads = recordLoads();
  try {
    const result = await runtrail(args, loads.options);
    return { code: result.code, stderr: result.stderr, loaded: loads.loaded() };
  } finally {
    loads.remove();
  }
}

/** The SDK, the WebSocket library, the server: what a command loads only to do its work. */
const CLIENT = /\/packages\/client\//;
const WS = /\/node_modules\/ws\//;
const SERVER = /\/packages\/server\/dist\/(?!config|startup-error|security\/browser-guard)/;

/**
 * Every test spawns the CLI, and every user waits for it: a command loads what its own work
 * needs, when it runs, not what every other command needs (the SDK, ws, the demo handler…).
 */
describe('runtrail startup', () => {
  it('prints its version and any help without loading the SDK, the WebSocket library or the server', async () => {
    for (const args of [['--version'], ['--help'], ['runs', 'ls', '--help'], ['help', 'exec'], ['tail', '--help'], ['serve', '--help']]) {
      const { code, loaded } = await modulesLoadedBy(args);
      expect(code, args.join(' ')).toBe(0);
      // The recorder works: the CLI's own modules are listed.
      expect(loaded, args.join(' ')).toContainEqual(expect.stringMatching(/\/packages\/cli\/dist\/program\.js$/));
      expect(
        loaded.filter((url) => CLIENT.test(url) || WS.test(url) || SERVER.test(url)),
        args.join(' '),
      ).toEqual([]);
    }
  });

  it('loads the SDK but not the WebSocket library for a command that watches nothing', async () => {
    const { code, stderr, loaded } = await modulesLoadedBy(['runs', 'ls', '--server', `http://127.0.0.1:${await freePort()}`]);
    expect([code, stderr]).toEqual([2, expect.stringContaining('no server answers')]);
    expect(loaded).toContainEqual(expect.stringMatching(CLIENT));
    expect(loaded.filter((url) => WS.test(url))).toEqual([]);
  });

  it("shows exec's defaults as the SDK's, which it does not import to show them", () => {
    const exec = createProgram().commands.find((c) => c.name() === 'exec')!;
    const defaults = Object.fromEntries(exec.options.map((o) => [o.long, o.defaultValue as unknown]));
    expect(defaults).toMatchObject({ '--kill-grace': DEFAULT_KILL_GRACE_MS, '--collect-every': DEFAULT_COLLECT_INTERVAL_MS });
  });
});
