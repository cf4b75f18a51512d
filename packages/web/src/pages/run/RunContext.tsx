import { memo } from 'react';
import type { Run, Snapshot } from '@runtrail/protocol';
import { JsonBlock } from '../../components/JsonBlock.js';
import { RunningFor } from '../../components/RunningFor.js';
import { formatDuration } from '../../format.js';
import { visibleText } from '../../visible-text.js';
import './run-panels.css';

/** What `runtrail exec` and ctx.exec record in `meta.exec` (client/node run-process). */
interface ExecMeta {
  command?: string;
  host?: string;
  exitCode?: number | null;
  signal?: string | null;
  reason?: string;
  killedWith?: string | null;
  durationMs?: number;
}

function execOf(meta: Record<string, unknown>): ExecMeta | null {
  const exec = meta.exec;
  return exec && typeof exec === 'object' && !Array.isArray(exec) ? (exec as ExecMeta) : null;
}

const STOP_REASON: Record<string, string> = {
  timeout: 'stopped by its timeout',
  idle_timeout: 'stopped by its idle timeout',
  aborted: 'cancelled or interrupted',
};

function exitText(exec: ExecMeta, ended: boolean): string {
  if (exec.signal) return `killed by ${exec.signal}`;
  if (typeof exec.exitCode === 'number') return `exit code ${exec.exitCode}`;
  return ended ? 'unknown (the runner did not report it)' : 'still running';
}

/**
 * What the run was given and what it produced, up front: for a command,
 * how it was run and how it ended; then input, output, labels and meta as
 * pretty-printed, collapsible JSON. Memoised on those parts of the run and
 * its snapshot (each keeps its object while it does not change), so the
 * run's progress, calls and logs leave it be.
 */
export const RunContext = memo(function RunContext({
  input,
  output,
  labels: runLabels,
  meta: allMeta,
  startedAt,
  ended,
}: {
  input: Run['input'];
  /** The run's output, or its terminal event's before the run is read again. */
  output: unknown;
  labels: Run['labels'];
  meta: Snapshot['meta'];
  startedAt: number | null;
  ended: boolean;
}) {
  const exec = execOf(allMeta);
  // meta.exec is shown above as facts; the rest of meta as JSON.
  const meta = exec ? Object.fromEntries(Object.entries(allMeta).filter(([key]) => key !== 'exec')) : allMeta;
  const labels = Object.entries(runLabels);
  return (
    <section className="panel run-context" aria-labelledby="context-title">
      <h2 id="context-title">Context and results</h2>
      {exec && (
        <dl className="exec-facts" aria-label="command">
          <div className="exec-command">
            <dt>Command</dt>
            <dd className="mono" data-testid="exec-command">
              {exec.command !== undefined ? visibleText(exec.command) : '–'}
            </dd>
          </div>
          <div>
            <dt>Exit</dt>
            <dd data-testid="exec-exit" className={exec.exitCode === 0 && !exec.signal ? 'ok-text' : ended ? 'invalid' : ''}>
              {exitText(exec, ended)}
              {exec.reason && STOP_REASON[exec.reason] ? ` (${STOP_REASON[exec.reason]})` : ''}
            </dd>
          </div>
          <div>
            <dt>Host</dt>
            <dd data-testid="exec-host">{exec.host !== undefined ? visibleText(exec.host) : '–'}</dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd data-testid="exec-duration">
              {(exec.durationMs ?? null) !== null || startedAt === null ? formatDuration(exec.durationMs ?? null) : <RunningFor since={startedAt} />}
            </dd>
          </div>
        </dl>
      )}
      <div className="labels-row" data-testid="run-labels">
        <h3 className="json-title">Labels</h3>
        {labels.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          labels.map(([k, v]) => (
            <span key={k} className="label">
              {visibleText(`${k}=${v}`)}
            </span>
          ))
        )}
      </div>
      <div className="json-grid">
        <JsonBlock title="Input" value={input} empty="No input." />
        <JsonBlock title="Output" value={output} empty={ended ? 'No output.' : 'Not finished yet.'} />
        <JsonBlock title="Meta" value={Object.keys(meta).length > 0 ? meta : undefined} empty={exec ? 'No other meta.' : 'No meta.'} />
      </div>
    </section>
  );
});
