import { RuntrailClient, type RuntrailClientOptions } from '../runtrail-client.js';
import type { RunHandle } from './run-handle.js';

/** Where a process finds its server when RUNTRAIL_URL is not set (runtrail serve's default). */
const DEFAULT_URL = 'http://127.0.0.1:4310';

/** Where currentRun() takes a token from (its 401 would otherwise name RuntrailClient's option, which its user never sees). */
const CURRENT_RUN_TOKEN_HINT = 'currentRun() sends the token in RUNTRAIL_TOKEN, which is not set';

const attached = new Map<string, Promise<RunHandle>>();

/**
 * The run this process runs under (`RUNTRAIL_RUN_ID`, set by `runtrail
 * exec` and a handler's `ctx.exec`), as a handle that adds events and
 * artifacts to it, or null when there is none. The server is RUNTRAIL_URL
 * (else the local default) with RUNTRAIL_TOKEN; the same handle is
 * returned on every call. The process that set the variable owns the run:
 * it heartbeats it and ends it when this process exits. Python's
 * `runtrail.current_run()` is the same.
 */
export function currentRun(options: Omit<RuntrailClientOptions, 'url'> = {}): Promise<RunHandle | null> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const runId = env?.RUNTRAIL_RUN_ID;
  if (!runId) return Promise.resolve(null);
  let handle = attached.get(runId);
  if (!handle) {
    handle = new RuntrailClient({ url: env.RUNTRAIL_URL || DEFAULT_URL, token: env.RUNTRAIL_TOKEN || undefined, tokenHint: CURRENT_RUN_TOKEN_HINT, ...options }).attach(runId);
    attached.set(runId, handle);
    // A server that did not answer is asked again by the next call.
    handle.catch(() => attached.delete(runId));
  }
  return handle;
}
