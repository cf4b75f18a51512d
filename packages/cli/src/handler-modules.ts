import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RuntrailError } from '@runtrail/protocol';
import type { App } from '@runtrail/server';

/** What a `--handlers` module gives: a function that defines its handlers, or the handlers by name. */
type Registrar = (rt: Pick<App, 'define'>) => void | Promise<void>;

/**
 * `runtrail serve --handlers FILE`: the handlers of a module of the user's,
 * so a team runs its handlers on the stock server instead of writing a
 * program around `startServer`. Each module's default export is either a
 * function given the server (`export default (rt) => { rt.define(…) }`,
 * which may also pass define's options) or an object of handlers by name
 * (`export default { 'nightly-eval': async (ctx) => … }`). Every module is
 * loaded and checked before the server starts: a wrong path or export is a
 * one-line error, never a server without the handlers it was given.
 */
export async function loadHandlerModules(files: readonly string[]): Promise<Array<{ file: string; register: Registrar }>> {
  const loaded: Array<{ file: string; register: Registrar }> = [];
  for (const file of files) {
    const path = resolve(file);
    if (!existsSync(path)) throw refused(file, `no such file (${path})`);
    let module: { default?: unknown };
    try {
      module = (await import(pathToFileURL(path).href)) as { default?: unknown };
    } catch (err) {
      // Its own error, and for a syntax error where it is: import() does not say, `node --check` does.
      const e = err as Error & { code?: string };
      const where = e instanceof SyntaxError ? syntaxErrorPlace(path) : '';
      const hint = e.code === 'ERR_UNKNOWN_FILE_EXTENSION' ? ' (Node loads JavaScript: compile TypeScript to .js or .mjs first)' : '';
      throw refused(file, `loading it failed: ${e.message}${where}${hint}`);
    }
    loaded.push({ file, register: registrarOf(file, module.default) });
  }
  return loaded;
}

/** ` at file:///…/handlers.mjs:4`, as `node --check` reports the first syntax error, or nothing. */
function syntaxErrorPlace(path: string): string {
  const check = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 10_000 });
  const place = check.stderr?.split('\n')[0]?.trim();
  return place && /:\d+$/.test(place) ? ` at ${place}` : '';
}

type Handler = Parameters<App['define']>[1];
type HandlerOptions = NonNullable<Parameters<App['define']>[2]>;

/** A handler by name: the function, or `{ handler, ...define's options }` (`{ handler, concurrency: 1 }`). */
function handlerEntry(value: unknown): { handler: Handler; options: HandlerOptions } | null {
  if (typeof value === 'function') return { handler: value as Handler, options: {} };
  if (value !== null && typeof value === 'object' && typeof (value as { handler?: unknown }).handler === 'function') {
    const { handler, ...options } = value as { handler: Handler } & HandlerOptions;
    return { handler, options };
  }
  return null;
}

function registrarOf(file: string, exported: unknown): Registrar {
  if (typeof exported === 'function') return exported as Registrar;
  if (exported !== null && typeof exported === 'object') {
    const entries = Object.entries(exported).map(([name, value]) => [name, value, handlerEntry(value)] as const);
    const notHandler = entries.find(([, , entry]) => entry === null);
    if (entries.length > 0 && !notHandler) {
      return (rt) => {
        for (const [name, , entry] of entries) rt.define(name, entry!.handler, entry!.options);
      };
    }
    if (notHandler) {
      throw refused(file, `its default export's "${notHandler[0]}" is ${describe(notHandler[1])}, not a handler function (or { handler, concurrency, input })`);
    }
  }
  throw refused(
    file,
    `its default export is ${describe(exported)}; export a function that defines handlers (export default (rt) => { rt.define('name', async (ctx) => …) }) or an object of handlers by name`,
  );
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? (Object.keys(value).length === 0 ? 'an empty object' : 'an object') : `a ${typeof value}`;
}

function refused(file: string, why: string): RuntrailError {
  return new RuntrailError('invalid_request', `--handlers ${file}: ${why}`);
}
