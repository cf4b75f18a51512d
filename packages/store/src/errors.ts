import { RuntrailError, type RunStatus, type Snapshot } from '@runtrail/protocol';

/** Errors every adapter raises the same way (same code, same message, same details). */
export function notFound(runId: string): RuntrailError {
  return new RuntrailError('run_not_found', `run ${runId} does not exist`, { runId });
}

export function terminalConflict(runId: string, status: RunStatus, snapshot: Snapshot): RuntrailError {
  const end = snapshot.terminal;
  const why = end?.error ? ` (${end.error.kind}: ${end.error.message})` : '';
  return new RuntrailError(
    'run_already_terminal',
    `run ${runId} already ended ${status}${why}; its log is closed`,
    { status, terminal: end },
  );
}
