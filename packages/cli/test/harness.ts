import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, waitUntil } from '@runtrail/test-support';

/** The installed entry point (`runtrail` in node_modules/.bin links here). */
export const BIN = fileURLToPath(new URL('../bin/runtrail.js', import.meta.url));

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Extra `node` flags before the entry point. */
  nodeArgs?: string[];
  bin?: string;
}

/** Run `runtrail ARGS` as a user would, to its exit. */
export async function runtrail(args: string[], options: CliOptions = {}): Promise<Result> {
  const child = spawnCli(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

export function spawnCli(args: string[], options: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, [...(options.nodeArgs ?? []), options.bin ?? BIN, ...args], {
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Records the URL of every module a spawned CLI loads (fixtures/record-loads.mjs, preloaded with
 * `node --import`): pass `options` to runtrail or serve, read `loaded()` once it has exited.
 */
export function recordLoads(): { options: CliOptions; loaded(): string[]; remove(): void } {
  const dir = tempDir();
  const file = join(dir.path, 'loads.txt');
  return {
    options: { nodeArgs: ['--import', fileURLToPath(new URL('./fixtures/record-loads.mjs', import.meta.url))], env: { RECORD_LOADS_TO: file } },
    loaded: () => readFileSync(file, 'utf8').split('\n').filter(Boolean),
    remove: () => dir.remove(),
  };
}

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  stdout(): string;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
}

/** `runtrail serve ARGS` until it prints its URL. */
export async function serve(args: string[], options: CliOptions = {}): Promise<ServeProcess> {
  const child = spawnCli(['serve', ...args], options);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const url = await waitUntil(
    () => {
      if (child.exitCode !== null) throw new Error(`runtrail serve exited ${child.exitCode}: ${err}`);
      return /serving on (http:\/\/\S+)/.exec(out)?.[1];
    },
    { timeoutMs: 20_000, what: 'runtrail serve to print its URL' },
  );
  return {
    url,
    child,
    stdout: () => out,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** A port nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}
