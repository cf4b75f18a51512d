import { hostname, networkInterfaces } from 'node:os';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { HttpApi } from '../http-api.js';
import { installExitGuard, serverPortsInThisProcess, type ExitGuard } from '../producer/exit-guard.js';
import type { ProcessEnd, RunHandle } from '../producer/run-handle.js';
import type { ExitJob, ExitOutcome, ExitWork } from './exit-worker.js';

/** Signals that end a Node process by default, and so the runs it holds. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/**
 * How long after the runs' deadline the process still waits for the worker's
 * answer: its last attempts end at the deadline (each is cut to what is
 * left), and then it only posts what they got, unless a loaded machine
 * starves its thread. The bound is what it was when this was the worker's
 * start-up allowance.
 */
const ANSWER_MARGIN_MS = 2_000;

interface Watched {
  handle: RunHandle;
  api: HttpApi;
  timeoutMs: number;
}

const watched = new Set<Watched>();
let listening = false;

/**
 * The Node exit guard (see producer/exit-guard.ts). A process that is going
 * away cannot wait for promises: its exit handlers and its uncaught
 * exception monitor must finish synchronously. So the runs' last words are
 * sent by a worker thread, with its own event loop, while this thread
 * blocks on an Atomics.wait for at most the handles' exit timeout.
 *
 * Listeners go on only once a run is watched. The process ends as it
 * would have without them: a crash still prints its error and exits 1, a
 * signal is raised again once our listener is gone. A process that handles
 * these itself (an 'uncaughtException' listener, its own SIGINT listener)
 * decides for itself: it lives on, or ends its runs as it means to.
 */
export const nodeExitGuard: ExitGuard = {
  watch(handle, api, timeoutMs) {
    const entry = { handle, api, timeoutMs };
    watched.add(entry);
    handle.whenClosed(() => watched.delete(entry));
    listen();
  },
};

function listen(): void {
  if (listening) return;
  listening = true;
  process.on('uncaughtExceptionMonitor', (error) => {
    // A listener or capture callback keeps the process alive: its runs go on.
    if (process.listenerCount('uncaughtException') > 0 || process.hasUncaughtExceptionCaptureCallback()) return;
    endWatched({ kind: 'crash', error });
  });
  process.on('exit', (code) => endWatched({ kind: 'exit', code }));
  for (const signal of STOP_SIGNALS) process.on(signal, onStopSignal);
}

function onStopSignal(signal: NodeJS.Signals): void {
  // Someone else listens too: they decide whether the process ends.
  if (process.listenerCount(signal) > 1) return;
  endWatched({ kind: 'signal', signal });
  // Then end as the process would have without us: by the signal.
  for (const s of STOP_SIGNALS) process.removeListener(s, onStopSignal);
  listening = false;
  process.kill(process.pid, signal);
}

/** End every watched run with `end`, waiting for the server (the worker) at most the longest exit timeout. */
function endWatched(end: ProcessEnd): void {
  const jobs: ExitJob[] = [];
  const now = Date.now();
  for (const { handle, api, timeoutMs } of [...watched]) {
    // Its server goes away with this process, and restarted gives the run a lease to be taken up again.
    if (servedHere(api.connection.url)) continue;
    const words = handle.lastWords(end);
    if (!words) continue;
    jobs.push({ ...words, ...api.connection, deadlineMs: timeoutMs, deadlineAt: now + timeoutMs });
  }
  if (jobs.length === 0) return;
  const outcomes = sendFromWorker({ jobs }, Math.max(...jobs.map((job) => job.deadlineAt)) - Date.now() + ANSWER_MARGIN_MS);
  for (const job of jobs) {
    const outcome = outcomes?.find((o) => o.runId === job.runId);
    process.stderr.write(`runtrail: ${outcomeText(job, outcome)}\n`);
  }
}

/** Whether `url` is a runtrail server of this process, which could not answer while this thread waits for it. */
function servedHere(url: string): boolean {
  const { hostname: host, port, protocol } = new URL(url);
  if (!serverPortsInThisProcess().has(Number(port || (protocol === 'https:' ? 443 : 80)))) return false;
  const name = host.replace(/^\[|\]$/g, '');
  if (name === 'localhost' || name === hostname() || name.startsWith('127.') || name === '::1' || name === '0.0.0.0' || name === '::') return true;
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.address === name));
}

/** Run the worker and wait for its answer, blocking this thread for at most `waitMs`; null if none came (a worker that could not even start in time). */
function sendFromWorker(work: ExitWork, waitMs: number): ExitOutcome[] | null {
  const done = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL('./exit-worker.js', import.meta.url), { workerData: { work, done, port: port2 }, transferList: [port2] });
  worker.unref();
  Atomics.wait(done, 0, 0, waitMs);
  const answer = receiveMessageOnPort(port1) as { message: ExitOutcome[] } | undefined;
  void worker.terminate();
  return answer?.message ?? null;
}

function outcomeText(job: ExitJob, outcome: ExitOutcome | undefined): string {
  if (!job.finish) {
    const owner = 'the process that owns it ends it';
    if (outcome && 'stored' in outcome) return `run ${job.runId}: stored its ${unsent(job.events)}; ${owner}`;
    return `run ${job.runId}: could not store its ${unsent(job.events)} (${whyNot(job, outcome)}); ${owner}`;
  }
  const how = job.finish.error ? `${job.finish.status}: ${job.finish.error.message}` : job.finish.status;
  if (outcome && 'status' in outcome) {
    const stored = job.events > 0 ? ` (its ${unsent(job.events)} stored first)` : '';
    return outcome.status === job.finish.status ? `run ${job.runId} ended ${how}${stored}` : `run ${job.runId} had already ended ${outcome.status}${stored}`;
  }
  return `run ${job.runId} could not be ended ${how} (${whyNot(job, outcome)}); the server's reaper ends it orphaned once its lease lapses`;
}

/** Why the worker did not get the server to take a run's last words. */
function whyNot(job: ExitJob, outcome: ExitOutcome | undefined): string {
  return outcome && 'error' in outcome ? outcome.error : `no answer within ${Math.round(job.deadlineMs / 1000)} s`;
}

function unsent(events: number): string {
  return events === 1 ? '1 unsent event' : `${events} unsent events`;
}

installExitGuard(nodeExitGuard);
