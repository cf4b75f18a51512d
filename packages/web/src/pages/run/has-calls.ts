import type { Snapshot } from '@runtrail/protocol';

/**
 * Whether the run has made any call (one running, or one counted). A run
 * that makes none (a command, a parent of experiments) shows no call
 * panels: "0 OK, 0 Failed, 0 Retries" and "No calls running" are noise
 * there. They appear with the first call, as the metrics and the timeline
 * appear with the first metric or phase.
 */
export function hasCalls(s: Snapshot): boolean {
  const { ok, failed, retries } = s.counters;
  return ok + failed + retries > 0 || Object.keys(s.current).length > 0;
}
