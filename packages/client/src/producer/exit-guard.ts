import type { HttpApi } from '../http-api.js';
import type { RunHandle } from './run-handle.js';

/**
 * Ends a process's open runs when the process goes away (an uncaught
 * exception, a stopping signal, an exit with a run still open), so a run
 * keeps the events its producer had queued and says how the producer
 * ended, instead of losing them and being reaped `orphaned` a lease later.
 * Node only: this package's Node entry installs one (node/exit-guard.ts);
 * in a browser there is none, and handles are not watched.
 */
export interface ExitGuard {
  /** Watch `handle`, made by a client talking to `api`, until it closes; `timeoutMs` bounds the wait at exit. */
  watch(handle: RunHandle, api: HttpApi, timeoutMs: number): void;
}

let installed: ExitGuard | null = null;

export function installExitGuard(guard: ExitGuard): void {
  installed = guard;
}

export function exitGuard(): ExitGuard | null {
  return installed;
}

const SERVER_PORTS = Symbol.for('runtrail.serverPortsInThisProcess');

/**
 * The ports runtrail servers of this process listen on (the server adds
 * and removes its own; every copy of this package shares the set). A run
 * on such a server cannot be ended as the process goes away: the server
 * answers on the thread that is then waiting for it.
 */
export function serverPortsInThisProcess(): Set<number> {
  const global = globalThis as { [SERVER_PORTS]?: Set<number> };
  return (global[SERVER_PORTS] ??= new Set());
}
