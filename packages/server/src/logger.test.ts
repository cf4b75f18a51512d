import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DeferredChildLogger, createLogger, deferredRequestLogger } from './logger.js';
import { jsonLogLines } from './log-lines.test-kit.js';

/** A pino logger writing JSON lines into an array, and how many children it was asked for. */
function capture(level = 'info') {
  const { lines, destination: sink } = jsonLogLines();
  const root = pino({ level, base: { node: 'n1' } }, sink);
  let children = 0;
  // Pino's children inherit `child` from the root: counted for them too, each made from the logger it is called on.
  const child = root.child;
  root.child = function (this: typeof root, ...args: Parameters<typeof child>) {
    children++;
    return child.apply(this, args);
  } as typeof root.child;
  return { root, lines, children: () => children };
}

describe('DeferredChildLogger', () => {
  it('makes no pino child for a request that logs nothing, and a line it logs carries the request id and runId', () => {
    const { root, lines, children } = capture();
    const request = deferredRequestLogger(root, { reqId: 'req-1' }, {});
    const run = request.child({ runId: 'run-1' });
    run.debug('below the level');
    expect(children()).toBe(0);
    expect(lines).toEqual([]);

    run.error({ err: new Error('boom') }, 'request failed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, node: 'n1', reqId: 'req-1', runId: 'run-1', msg: 'request failed' });
    expect((lines[0]!.err as { message: string }).message).toBe('boom');
    // Made once each (the request's, then the run's), then reused.
    run.warn('again');
    expect(lines[1]).toMatchObject({ reqId: 'req-1', runId: 'run-1', msg: 'again' });
    expect(children()).toBe(2);
  });

  it('keeps a level of its own (a route logLevel), set at creation or later', () => {
    const { root, lines } = capture('info');
    const quiet = new DeferredChildLogger(root, { reqId: 'r' }, { level: 'error' });
    quiet.warn('dropped');
    expect(quiet.isLevelEnabled('warn')).toBe(false);
    quiet.level = 'debug';
    quiet.debug('kept');
    expect(lines.map((l) => l.msg)).toEqual(['kept']);
    expect(quiet.level).toBe('debug');
  });
});

describe('createLogger in a terminal', () => {
  function prettyLine(env: Record<string, string | undefined>): string {
    let text = '';
    const into = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString();
        done();
      },
    });
    createLogger({ logLevel: 'info', logFormat: 'auto', node: 'n1' }, true, into, env).warn('database listener disconnected');
    return text;
  }

  it('colours its lines, and not when NO_COLOR is set (no-color.org), nor for an empty NO_COLOR', () => {
    expect(prettyLine({})).toContain('\x1b[');
    expect(prettyLine({ NO_COLOR: '1' })).not.toContain('\x1b[');
    expect(prettyLine({ NO_COLOR: '1' })).toContain('database listener disconnected');
    expect(prettyLine({ NO_COLOR: '' })).toContain('\x1b[');
  });
});
