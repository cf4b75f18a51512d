import { workerData, type MessagePort } from 'node:worker_threads';
import { RuntrailError, type RunStatus } from '@runtrail/protocol';
import { retrying } from '../backoff.js';
import { HttpApi, JsonBody } from '../http-api.js';
import type { LastWords } from '../producer/run-handle.js';

/** One run's last words and where to send them (node/exit-guard.ts). */
export interface ExitJob extends LastWords {
  url: string;
  headers: Record<string, string>;
  /** Each request's timeout. */
  timeoutMs: number;
  /** How long, in all, this run's requests may take (producer.exitTimeoutMs), as said in messages. */
  deadlineMs: number;
  /**
   * When that time is up (Date.now() clock), set by the waiting thread as it
   * starts the worker: a worker slow to start (a loaded machine) spends its
   * own start out of it, instead of answering after the process stopped
   * waiting for it.
   */
  deadlineAt: number;
}

export interface ExitWork {
  jobs: ExitJob[];
}

/** The run's status once ended; `stored` for an attached handle's events (its owner ends the run). */
export type ExitOutcome = { runId: string; status: RunStatus } | { runId: string; stored: true } | { runId: string; error: string };

/**
 * A worker thread that sends the last words of a process's open runs while
 * the process waits (Atomics.wait on `done`): each run's appends in order,
 * retried through an outage like the handle's own (the same event ids, so
 * nothing is stored twice), then its finish. Runs go in parallel.
 */
async function sendAll(work: ExitWork): Promise<ExitOutcome[]> {
  return Promise.all(work.jobs.map(endRun));
}

async function endRun(job: ExitJob): Promise<ExitOutcome> {
  const deadline = job.deadlineAt;
  const api = new HttpApi({ url: job.url, headers: job.headers, requestTimeoutMs: job.timeoutMs });
  const left = () => Math.max(0, deadline - Date.now());
  // Why the server did not take the run's last words: an attempt cut short by the deadline says only
  // that time ran out, so the failure of an attempt before it (the server refusing connections) is kept.
  let cause: unknown = null;
  const attempt = async <T>(send: (timeoutMs: number) => Promise<T>): Promise<T> => {
    // Each attempt within what is left, so the last one cannot outlast the deadline.
    const timeoutMs = Math.min(job.timeoutMs, Math.max(1, left()));
    try {
      return await send(timeoutMs);
    } catch (err) {
      if (timeoutMs === job.timeoutMs || !isTimeout(err)) cause = err;
      throw err;
    }
  };
  const params = { id: job.runId };
  try {
    for (const text of job.appends) {
      await retrying(() => attempt((timeoutMs) => api.request('appendEvents', { params, timeoutMs, body: new JsonBody(text) })), left());
    }
    if (!job.finish) return { runId: job.runId, stored: true };
    const finish = job.finish;
    const run = await retrying(() => attempt((timeoutMs) => api.request('finishRun', { params, timeoutMs, body: finish })), left());
    return { runId: job.runId, status: run.status };
  } catch (err) {
    // Ended meanwhile (the reaper, a cancel through another node): say how.
    if (RuntrailError.isCode(err, 'run_already_terminal')) {
      const status = (err.details as { status?: RunStatus } | undefined)?.status;
      if (status) return { runId: job.runId, status };
    }
    const ranOut = `no answer within ${job.deadlineMs} ms (producer.exitTimeoutMs)`;
    if (isTimeout(err) && cause === null) return { runId: job.runId, error: ranOut };
    const why = cause ?? err;
    return { runId: job.runId, error: `${why instanceof Error ? why.message : String(why)}${why !== err ? `; then ${ranOut}` : ''}` };
  }
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === 'TimeoutError';
}

const { work, done, port } = workerData as { work: ExitWork; done: Int32Array; port: MessagePort };
let outcomes: ExitOutcome[];
try {
  outcomes = await sendAll(work);
} catch (err) {
  // sendAll settles per run; this is a bug in it: every run is told so.
  outcomes = work.jobs.map((job) => ({ runId: job.runId, error: `the exit worker failed: ${String(err)}` }));
}
port.postMessage(outcomes);
Atomics.store(done, 0, 1);
Atomics.notify(done, 0);
