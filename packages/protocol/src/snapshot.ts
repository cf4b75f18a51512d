import { dataRecord } from './data-keys.js';
import type { LogLevel, RunError } from './events.js';

/**
 * Bounds that keep a snapshot small however long the run is. Past a bound
 * the snapshot keeps what it has (or the latest entries, for lists); every
 * event is still in the log.
 */
export const SNAPSHOT_LIMITS = {
  logs: 100,
  artifacts: 500,
  metricPoints: 120,
  phases: 200,
  /** Distinct metric names, named counters and meta keys tracked. */
  names: 200,
  /** In-flight calls listed in `current`. */
  inFlight: 1000,
} as const;

export interface CallInFlight {
  callId: string;
  label: string;
  startedAt: number;
  attempt: number;
}

export interface PhaseRecord {
  name: string;
  status: 'started' | 'completed' | 'failed';
  startedAt: number;
  endedAt: number | null;
  durationMs: number | null;
  timeoutMs: number | null;
}

export interface MetricSummary {
  last: number;
  min: number;
  max: number;
  count: number;
  step: number | null;
  ts: number;
  /** The latest points as [step (or seq when the producer gave none), value]. */
  recent: Array<[number, number]>;
}

export interface LogLine {
  seq: number;
  ts: number;
  level: LogLevel;
  message: string;
}

/**
 * An artifact as the snapshot lists it. A stored one (content on the server,
 * `GET /runs/:id/artifacts/:name`) has an ordinal and a sha256; a link to
 * content kept elsewhere has a `uri` and neither.
 */
export interface ArtifactRecord {
  seq: number;
  ts: number;
  name: string;
  uri: string | null;
  contentType: string | null;
  size: number | null;
  ordinal: number | null;
  sha256: string | null;
  metadata: unknown;
}

export interface LastError {
  message: string;
  callId: string | null;
  seq: number;
  ts: number;
}

export type TerminalStatus = 'succeeded' | 'failed' | 'cancelled';

export interface TerminalInfo {
  status: TerminalStatus;
  at: number;
  seq: number;
  error: RunError | null;
  output: unknown;
}

export interface Snapshot {
  /** seq of the last event folded in. */
  seq: number;
  counters: { ok: number; failed: number; retries: number; named: Record<string, number> };
  /** In-flight calls by callId. */
  current: Record<string, CallInFlight>;
  /** Name of the phase that is running now, if any. */
  phase: string | null;
  phases: PhaseRecord[];
  progress: {
    done: number;
    total: number | null;
    percent: number | null;
    message: string | null;
    updatedAt: number;
  } | null;
  metrics: Record<string, MetricSummary>;
  meta: Record<string, unknown>;
  logs: LogLine[];
  lastError: LastError | null;
  artifacts: ArtifactRecord[];
  stalled: { at: number; stallTimeoutMs: number; lastProgressAt: number | null } | null;
  cancelRequested: boolean;
  startedAt: number | null;
  lastEventAt: number | null;
  /** ts of the last event that shows the run moving (see PROGRESS_TYPES). */
  lastProgressAt: number | null;
  terminal: TerminalInfo | null;
}

export function initialSnapshot(): Snapshot {
  return {
    seq: 0,
    counters: { ok: 0, failed: 0, retries: 0, named: dataRecord() },
    current: dataRecord(),
    phase: null,
    phases: [],
    progress: null,
    metrics: dataRecord(),
    meta: dataRecord(),
    logs: [],
    lastError: null,
    artifacts: [],
    stalled: null,
    cancelRequested: false,
    startedAt: null,
    lastEventAt: null,
    lastProgressAt: null,
    terminal: null,
  };
}
