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
  /** How long, in all, this run's requests may take. */
  deadlineMs: number;
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
  const deadline = Date.now() + job.deadlineMs;
  const api = new HttpApi({ url: job.url, headers: job.headers, requestTimeoutMs: job.timeoutMs });
  const left = () => Math.max(0, deadline - Date.now());
  // Each attempt within what is left, so the last one cannot outlast the deadline.
  const options = () => ({ params: { id: job.runId }, timeoutMs: Math.min(job.timeoutMs, Math.max(1, left())) });
  try {
    for (const text of job.appends) {
      await retrying(() => api.request('appendEvents', { ...options(), body: new JsonBody(text) }), left());
    }
    if (!job.finish) return { runId: job.runId, stored: true };
    const finish = job.finish;
    const run = await retrying(() => api.request('finishRun', { ...options(), body: finish }), left());
    return { runId: job.runId, status: run.status };
  } catch (err) {
    // Ended meanwhile (the reaper, a cancel through another node): say how.
    if (RuntrailError.isCode(err, 'run_already_terminal')) {
      const status = (err.details as { status?: RunStatus } | undefined)?.status;
      if (status) return { runId: job.runId, status };
    }
    return { runId: job.runId, error: err instanceof Error ? err.message : String(err) };
  }
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
