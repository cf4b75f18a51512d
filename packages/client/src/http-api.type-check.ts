import type { Run } from '@runtrail/protocol';
import type { HttpApi } from './http-api.js';

/**
 * Compile-time checks of HttpApi's route typing (never called): `tsc -b`
 * fails if a wrong call stops being an error (an unused @ts-expect-error) or
 * a right one becomes one.
 */
export async function _httpApiTypeChecks(api: HttpApi): Promise<void> {
  const run: Run = await api.request('createRun', { body: { name: 'typed' } });
  const page = await api.request('listRuns', { query: { status: 'running', limit: 10 } });
  void [run.snapshot.current, page.runs, page.nextCursor];
  const events = await api.request('readEvents', { params: { id: run.id }, query: { after: 0 } });
  void events.events[0]?.seq;
  const deleted: undefined = await api.request('deleteRun', { params: { id: run.id } });
  void deleted;
  await api.request('whoami');

  // @ts-expect-error getRun's path names :id
  await api.request('getRun');
  // @ts-expect-error getRun's path names :id, not :runId
  await api.request('getRun', { params: { runId: run.id } });
  // @ts-expect-error an append's events are a list
  await api.request('appendEvents', { params: { id: run.id }, body: { events: 'one' } });
  // @ts-expect-error a run's status is one of RunStatus
  await api.request('listRuns', { query: { status: 'paused' } });
  // @ts-expect-error retryRun takes no body
  await api.request('retryRun', { params: { id: run.id }, body: {} });
  // @ts-expect-error a run has no field `state`
  void (await api.request('getRun', { params: { id: run.id } })).state;
}
