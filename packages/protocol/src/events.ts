import { z } from 'zod';
import { freeText, nameText } from './text.js';
import { MAX_ERROR_MESSAGE_CHARS, MAX_EVENT_TYPE_CHARS, MAX_LABEL_CHARS, MAX_LOG_MESSAGE_CHARS } from './limits.js';

/**
 * Event vocabulary. Every event a producer may send is listed here with the
 * schema of its `data`; the reducer switches over exactly these types, and the
 * compiler checks that it handles each one.
 */

export const RunErrorKind = z.enum([
  'error',
  'timeout',
  'orphaned',
  'stalled',
  'cancelled',
  'interrupted',
]);
export type RunErrorKind = z.infer<typeof RunErrorKind>;

export const RunError = z.strictObject({
  kind: RunErrorKind,
  message: z.string().max(MAX_ERROR_MESSAGE_CHARS),
});
export type RunError = z.infer<typeof RunError>;
/** A run's error as a producer sends it: its message is free text (no NUL). RunError also reads errors stored before that rule. */
const RunErrorInput = z.strictObject({ kind: RunErrorKind, message: freeText().max(MAX_ERROR_MESSAGE_CHARS) });

/**
 * Deepest nesting accepted in free-form JSON (run input, event data, output).
 * The body limit bounds size, not depth: a few KB of `[[[[…` would overflow
 * the stack of JSON.stringify inside the store's transaction and turn bad
 * input into a 500.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether `value` nests at most `max` objects/arrays deep; iterative so that it cannot overflow itself. */
export function withinJsonDepth(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return false;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}

/** Any JSON value, nested at most MAX_JSON_DEPTH deep. */
export const JsonValue = z.unknown().refine((v) => withinJsonDepth(v), {
  message: `nests deeper than ${MAX_JSON_DEPTH} levels`,
});

/** Phase, metric and counter names: identifiers (no control characters), like run names. */
const name = nameText().min(1).max(200);
const callId = z.string().min(1).max(200);
const finite = z.number().refine(Number.isFinite, 'must be a finite number');

export const PhaseStatus = z.enum(['started', 'completed', 'failed']);
export const LogLevel = z.enum(['debug', 'info', 'warn', 'error']);
export type LogLevel = z.infer<typeof LogLevel>;

/**
 * `data` schema of each known event type. Every type says what happens to a
 * field it does not list, never silently dropping it (a 200 that loses data
 * is the bug runtrail exists to prevent):
 * - `z.looseObject`: extra fields are stored and streamed exactly as sent
 *   (descriptive events a producer naturally annotates: a call's tokens, an
 *   artifact's metadata, a log line's logger);
 * - `z.strictObject`: extra fields are refused with 400 naming the field
 *   (events whose fields drive the snapshot, where an unknown key is most
 *   likely a typo that would lose a value, e.g. `{done, totl}`, and the
 *   run's own lifecycle events, whose free-form part is `output`).
 * A test fails if a type uses a plain `z.object`, which would strip.
 */
export const eventDataSchemas = {
  'run.started': z.looseObject({}),
  phase: z.strictObject({
    name,
    status: PhaseStatus,
    timeoutMs: z.number().int().positive().optional(),
  }),
  'call.started': z.looseObject({ callId, label: z.string().max(MAX_LABEL_CHARS) }),
  'call.succeeded': z.looseObject({ callId, durationMs: z.number().nonnegative().optional() }),
  'call.failed': z.looseObject({
    callId,
    error: z.string().max(MAX_ERROR_MESSAGE_CHARS),
    willRetry: z.boolean(),
  }),
  'call.retried': z.looseObject({ callId, attempt: z.number().int().positive() }),
  progress: z.strictObject({
    done: z.number().nonnegative().refine(Number.isFinite, 'must be a finite number'),
    total: z.number().nonnegative().refine(Number.isFinite, 'must be a finite number').optional(),
    message: z.string().max(MAX_LABEL_CHARS).optional(),
  }),
  metric: z.strictObject({ name, value: finite, step: z.number().optional() }),
  counter: z.strictObject({ name, delta: finite }),
  meta: z.record(z.string(), z.unknown()),
  log: z.looseObject({ level: LogLevel, message: z.string().max(MAX_LOG_MESSAGE_CHARS) }),
  /**
   * A stored artifact (the server appends it when content is stored, with
   * every field but `uri`), or a link to content kept elsewhere (`uri`).
   */
  artifact: z.looseObject({
    name: z.string().min(1).max(400),
    uri: z.string().max(2048).optional(),
    contentType: z.string().max(200).optional(),
    size: z.number().int().nonnegative().optional(),
    ordinal: z.number().int().positive().optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    createdAt: z.number().int().nonnegative().optional(),
    metadata: JsonValue.optional(),
  }),
  'run.cancel_requested': z.strictObject({ reason: freeText().max(MAX_ERROR_MESSAGE_CHARS).optional() }),
  'run.stalled': z.strictObject({
    stallTimeoutMs: z.number().int().positive(),
    lastProgressAt: z.number().nullable(),
  }),
  'run.succeeded': z.strictObject({ output: z.unknown().optional() }),
  'run.failed': z.strictObject({ error: RunErrorInput, output: z.unknown().optional() }),
  'run.cancelled': z.strictObject({ reason: freeText().max(MAX_ERROR_MESSAGE_CHARS).optional() }),
} as const;

export type ExtraFields = 'kept' | 'refused';

/**
 * What the schema of `type` does with a field it does not list, read from
 * the schema itself so the API reference cannot drift from it. Throws for a
 * schema that would strip extra fields silently.
 */
export function extraFieldsOf(type: KnownEventType): ExtraFields {
  const def = eventDataSchemas[type].def as { type: string; catchall?: { def: { type: string } } };
  if (def.type === 'record') return 'kept';
  const catchall = def.catchall?.def.type;
  if (catchall === 'never') return 'refused';
  if (catchall === 'unknown') return 'kept';
  throw new Error(`event type ${type}: its data schema would drop unknown fields silently; use z.looseObject or z.strictObject`);
}

export type KnownEventType = keyof typeof eventDataSchemas;

export const knownEventTypes = Object.keys(eventDataSchemas) as KnownEventType[];

/** Own keys only: `type in eventDataSchemas` would accept "toString" or "constructor". */
export function isKnownEventType(type: string): type is KnownEventType {
  return Object.hasOwn(eventDataSchemas, type);
}

export const TERMINAL_TYPES = ['run.succeeded', 'run.failed', 'run.cancelled'] as const;
export type TerminalType = (typeof TERMINAL_TYPES)[number];
export function isTerminalType(type: string): type is TerminalType {
  return (TERMINAL_TYPES as readonly string[]).includes(type);
}

/** An event that tells a run's owner to stop: a cancel request, or the run's end written by someone else. */
export function tellsOwnerToStop(type: string): boolean {
  return type === 'run.cancel_requested' || isTerminalType(type);
}

const TERMINAL_STATUS = { 'run.succeeded': 'succeeded', 'run.failed': 'failed', 'run.cancelled': 'cancelled' } as const;

/** The run status a terminal event ends the run with (the one map server and watchers share). */
export function terminalStatusOf(type: TerminalType): (typeof TERMINAL_STATUS)[TerminalType] {
  return TERMINAL_STATUS[type];
}

/** Producer extension events: stored and streamed, ignored by the reducer. */
export function isExtensionType(type: string): boolean {
  return type.startsWith('x.') && type.length > 2;
}

export type EventData<T extends KnownEventType> = z.infer<(typeof eventDataSchemas)[T]>;

/** What a producer sends. `id` makes a retried append idempotent. */
export const EventInput = z.strictObject({
  type: nameText()
    .min(1)
    .max(MAX_EVENT_TYPE_CHARS)
    .refine((t) => isKnownEventType(t) || isExtensionType(t), {
      message: `unknown event type; use one of ${knownEventTypes.join(', ')} or an extension type starting with "x."`,
    }),
  data: JsonValue.optional(),
  ts: z.number().int().nonnegative().optional(),
  id: nameText().min(1).max(128).optional(),
});
export type EventInput = z.infer<typeof EventInput>;

/** An event as the store holds it: the log entry every reader sees. */
export const RunEventSchema = z
  .object({
    runId: z.string(),
    seq: z.number(),
    type: z.string(),
    ts: z.number(),
    data: z.unknown(),
    id: z.string().optional(),
  })
  .meta({ id: 'RunEvent', description: 'An event as the log holds it' });
export type RunEvent = z.infer<typeof RunEventSchema>;

/** A known event with its data typed by its type tag; the reducer works on these. */
export type TypedEvent = {
  [T in KnownEventType]: { type: T; seq: number; ts: number; data: EventData<T> };
}[KnownEventType];
