import { z } from 'zod';
import { dataRecord } from './data-keys.js';
import { LogLevel, RunError } from './events.js';

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

// The snapshot is what the server sends with every run: its schemas are the
// definition, and the types below are inferred from them (one source for the
// code, the OpenAPI document and the docs).

export const CallInFlightSchema = z.object({ callId: z.string(), label: z.string(), startedAt: z.number(), attempt: z.number() });
export type CallInFlight = z.infer<typeof CallInFlightSchema>;

export const PhaseRecordSchema = z.object({
  name: z.string(),
  status: z.enum(['started', 'completed', 'failed']),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  durationMs: z.number().nullable(),
  timeoutMs: z.number().nullable(),
});
export type PhaseRecord = z.infer<typeof PhaseRecordSchema>;

export const MetricSummarySchema = z.object({
  last: z.number(),
  min: z.number(),
  max: z.number(),
  count: z.number(),
  step: z.number().nullable(),
  ts: z.number(),
  recent: z.array(z.tuple([z.number(), z.number()])).describe('latest points as [step (or seq), value]'),
});
export type MetricSummary = z.infer<typeof MetricSummarySchema>;

export const LogLineSchema = z.object({ seq: z.number(), ts: z.number(), level: LogLevel, message: z.string() });
export type LogLine = z.infer<typeof LogLineSchema>;

/**
 * An artifact as the snapshot lists it. A stored one (content on the server,
 * `GET /runs/:id/artifacts/:name`) has an ordinal and a sha256; a link to
 * content kept elsewhere has a `uri` and neither.
 */
export const ArtifactRecordSchema = z.object({
  seq: z.number(),
  ts: z.number(),
  name: z.string(),
  uri: z.string().nullable(),
  contentType: z.string().nullable(),
  size: z.number().nullable(),
  ordinal: z.number().nullable().describe('stored artifacts: 1, 2, … per run; null for a link'),
  sha256: z.string().nullable(),
  metadata: z.unknown(),
});
export type ArtifactRecord = z.infer<typeof ArtifactRecordSchema>;

export const LastErrorSchema = z.object({ message: z.string(), callId: z.string().nullable(), seq: z.number(), ts: z.number() });
export type LastError = z.infer<typeof LastErrorSchema>;

export const TerminalStatusSchema = z.enum(['succeeded', 'failed', 'cancelled']);
export type TerminalStatus = z.infer<typeof TerminalStatusSchema>;

export const TerminalInfoSchema = z.object({
  status: TerminalStatusSchema,
  at: z.number(),
  seq: z.number(),
  error: RunError.nullable(),
  output: z.unknown(),
});
export type TerminalInfo = z.infer<typeof TerminalInfoSchema>;

export const SnapshotSchema = z
  .object({
    seq: z.number().describe('seq of the last event folded in'),
    counters: z.object({
      ok: z.number(),
      failed: z.number(),
      retries: z.number(),
      unfinished: z
        .number()
        .optional()
        .describe(
          'calls still in flight when the run ended, which never finished; absent while the run runs, when there were none, and in snapshots stored before runtrail counted them',
        ),
      inFlight: z
        .number()
        .optional()
        .describe(
          `every call in flight, when there are more than \`current\` lists (it lists at most ${SNAPSHOT_LIMITS.inFlight}; a call started while it was full is counted here, not listed); absent when \`current\` lists them all, once the run has ended, and in snapshots stored before runtrail counted them`,
        ),
      named: z.record(z.string(), z.number()),
    }),
    current: z.record(z.string(), CallInFlightSchema).describe('in-flight calls by callId'),
    phase: z.string().nullable().describe('name of the phase that is running now, if any'),
    phases: z.array(PhaseRecordSchema),
    progress: z
      .object({
        done: z.number(),
        total: z.number().nullable(),
        percent: z.number().nullable(),
        message: z.string().nullable(),
        updatedAt: z.number(),
      })
      .nullable(),
    metrics: z.record(z.string(), MetricSummarySchema),
    meta: z.record(z.string(), z.unknown()),
    logs: z.array(LogLineSchema),
    lastError: LastErrorSchema.nullable(),
    artifacts: z.array(ArtifactRecordSchema),
    stalled: z.object({ at: z.number(), stallTimeoutMs: z.number(), lastProgressAt: z.number().nullable() }).nullable(),
    cancelRequested: z.boolean(),
    cancelReason: z.string().nullable().describe('the reason given with the cancel request, if any; a cancelled end without its own reason carries it'),
    startedAt: z.number().nullable(),
    lastEventAt: z.number().nullable(),
    lastProgressAt: z.number().nullable().describe('ts of the last event that shows the run moving (see PROGRESS_TYPES)'),
    terminal: TerminalInfoSchema.nullable(),
  })
  .meta({ id: 'Snapshot', description: 'The fold of a run’s events by the shared reducer' });
export type Snapshot = z.infer<typeof SnapshotSchema>;

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
    cancelReason: null,
    startedAt: null,
    lastEventAt: null,
    lastProgressAt: null,
    terminal: null,
  };
}

/**
 * Whether the run has made any call (one running, or one counted). A run
 * that makes none (a command, a parent of experiments) shows no call
 * counters: "0 OK, 0 Failed, 0 Retries" is noise there (the dashboard's
 * panels and list, the CLI's table).
 */
export function hasCalls(s: Snapshot): boolean {
  const { ok, failed, retries } = s.counters;
  return ok + failed + retries + unfinishedCalls(s) > 0 || callsInFlight(s) > 0;
}

/**
 * How many calls are in flight: all of them, not only the ones `current`
 * lists (at most SNAPSHOT_LIMITS.inFlight; see `counters.inFlight`).
 */
export function callsInFlight(s: Snapshot): number {
  return s.counters.inFlight ?? Object.keys(s.current).length;
}

/** Calls in flight when the run ended, which never finished (0 while it runs; see `counters.unfinished`). */
export function unfinishedCalls(s: Snapshot): number {
  return s.counters.unfinished ?? 0;
}
