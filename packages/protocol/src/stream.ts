import { z } from 'zod';
import { RunEventSchema, type RunEvent } from './events.js';
import { ErrorCodeSchema, RuntrailError } from './errors.js';
import { RunSchema, RunStatus, RunsFilterFields, wholeNumber } from './run.js';
import { nameText } from './text.js';

/**
 * The live subscription protocol, shared by the WebSocket transport, SSE and
 * the watcher SDK. A subscriber always says where it is (`after` = the last
 * seq it has); the server sends everything after it, backlog then live, in
 * seq order, with no gap and no duplicate (field note 1).
 *
 * WebSocket (`routes.stream`, one connection, many subscriptions), JSON text
 * frames both ways:
 * - client `{"op":"subscribe","runId":ID,"after":N}` -> server
 *   `{"type":"subscribed",runId,after,seq,status}` (seq/status: the run's head
 *   when the subscription started), then zero or more
 *   `{"type":"events",runId,events:[...]}` frames whose events are exactly
 *   seq N+1, N+2, ... (each frame holds consecutive events; frames follow each
 *   other without gap or overlap), backlog first and then live. With
 *   `"compact":true` in the subscribe, the events of its frames leave out
 *   `runId` (CompactRunEvent: the frame's `runId` is theirs; `eventsOf` puts
 *   it back): a third fewer bytes per typical event for the server to send
 *   and the client to parse, which counts with many watchers. After the
 *   frame holding the run's terminal event the server sends
 *   `{"type":"end",runId,status,seq}` and the subscription is complete.
 *   With `"observers":true` the server also sends
 *   `{"type":"observers",runId,count}`: how many WebSocket and SSE
 *   subscriptions follow the run on the node that serves this connection
 *   (the same number as the run's `observers` in GET /runs/:id), once right
 *   after `subscribed` and again when it changes, at most once per
 *   OBSERVER_COUNT_INTERVAL_MS while it keeps changing (so a thousand
 *   watchers arriving cost each watcher a message a second, not a thousand).
 *   A page that shows "N watching" needs no polling.
 *   A run that does not exist: `{"type":"error",runId,code:"run_not_found",...}`
 *   and no subscription. Subscribing again to the same runId replaces the
 *   previous subscription.
 *   A run deleted while subscribed (DELETE /runs/:id through any node of a
 *   cluster) ends the subscription with the same error, its message saying
 *   the run was deleted (runDeleted): no frame of it follows. Only an ended
 *   run can be deleted, so a subscription is normally complete by then; with
 *   `"untilDeleted":true` it stays after its `end` (nothing more is sent for
 *   it but that error) so a page that shows the ended run hears when it
 *   goes. It counts against the connection's subscriptions until then, or
 *   until unsubscribed, and among the run's observers too.
 * - client `{"op":"unsubscribe","runId":ID}`: no more frames for that run; the
 *   server answers `{"type":"unsubscribed",runId}` after the last frame of the
 *   old subscription, so frames before it are the old one's and a new
 *   subscribe's start at its `subscribed`.
 * - client `{"op":"subscribeRuns","filter":{...}}` (the list route's filters)
 *   -> server `{"type":"subscribedRuns"}`, then `{"type":"run",change,run}`
 *   for every run created, updated or deleted that matches the filter's
 *   fixed parts (matchesFixedFilter: name, parent, labels, creation time).
 *   status and errorKind are NOT filtered by the server, so a list can drop
 *   a run that left them; the client applies them (matchesStateFilter). Updates of one run
 *   may be coalesced to its latest state. A later `subscribedRuns` (sent
 *   again after the connection was too far behind) means: refetch the list.
 *   (`{"op":"subscribe","runs":{filter}}` is accepted as the same thing.)
 * - client `{"op":"unsubscribeRuns"}`.
 * - client `{"op":"ping"}` -> server `{"type":"pong"}`: lets a client that
 *   cannot see WebSocket pings (browsers) notice a connection that silently
 *   died, and reconnect.
 * - a client message the server cannot parse: `{"type":"error",code:"invalid_request"}`.
 * Keepalive: the server sends WebSocket pings every `streamPingIntervalMs`
 * and terminates a connection that did not answer the previous one.
 * Backpressure: when the bytes queued for a connection exceed the server's
 * `sendBufferBytes`, the server stops sending live events to it; once they
 * are flushed it continues from the store at the next seq. Nothing is lost.
 * Replies (pong, error, subscribed) count against the same bound: they may
 * take the queue up to `sendBufferBytes` + STREAM_REPLY_ALLOWANCE_BYTES, and a
 * client that sends anything while its queue is past that (it sends but does
 * not read) is closed with code STREAM_CLOSE_CODES.sendBufferFull (4008).
 * `invalid_request` errors for unparseable messages are rate-limited per
 * connection (STREAM_ERROR_REPLIES_PER_SECOND); the excess is dropped and
 * counted in the next error that is sent.
 *
 * Server-Sent Events (`routes.streamRun`, one run): `GET` with `?after=N` or
 * a `Last-Event-ID: N` header (the header wins, so a browser EventSource
 * resumes where it was). Unknown run: 404 with a JSON error before any
 * stream. Otherwise `text/event-stream` starting with a `retry:` hint, then
 * one `event: run-event` per event with `id: <seq>` and `data: <RunEvent JSON>`,
 * comment lines (`: ping`) as keepalive, and after the terminal event
 * `event: end` with `data: {"runId","status","seq"}`, after which the server
 * closes the response. An EventSource client must call `close()` on `end`,
 * or it will reconnect (and be told `end` again). A run deleted while
 * streamed: `event: error` with `data: {"code":"run_not_found","message"}`
 * (runDeleted), then the server closes the response. With
 * `?untilDeleted=true` the response stays open after `end` (keepalives
 * only) until then, as the WebSocket's `untilDeleted`. With `?observers=true`
 * the stream also carries `event: observers` with `data: {"runId","count"}`,
 * as the WebSocket's `observers` messages (no `id:`: they are not events).
 * With `?compact=true` each `run-event`'s data is a CompactRunEvent (no
 * `runId`: the stream is one run's), as a compact WebSocket subscription's.
 */

/**
 * Every WebSocket close code the server sends, in one table (4000-4999 are
 * the application's own; for the auth ones the last three digits echo HTTP).
 * SSE says the auth ones with `event: error` and `data: {"code","message"}`,
 * then ends.
 */
export const STREAM_CLOSE_CODES = {
  /** The server is stopping (standard). */
  goingAway: 1001,
  /** The client kept sending while not reading what it was sent: its queue passed the bound. */
  sendBufferFull: 4008,
  /** No token, an unknown or malformed one, or it expired or was revoked: final, do not reconnect. */
  unauthorized: 4401,
  /** The token is valid but may not hold this connection any more: final. */
  forbidden: 4403,
  /** The connection sent more messages than the server accepts per second. */
  rateLimited: 4429,
} as const;

/** While a run's watcher count keeps changing, its `observers` messages go out at most this often. */
export const OBSERVER_COUNT_INTERVAL_MS = 1000;

/** Bytes of replies a WebSocket may have queued beyond the server's sendBufferBytes. */
export const STREAM_REPLY_ALLOWANCE_BYTES = 64 * 1024;

/** `invalid_request` replies to unparseable messages, per connection and second (a burst of as many is allowed). */
export const STREAM_ERROR_REPLIES_PER_SECOND = 10;

export const StreamRunQuery = z.object({
  after: wholeNumber(0).optional(),
  /** `true`: also `event: observers` records (the WebSocket's `observers` messages). */
  observers: z.enum(['true', 'false']).optional(),
  /** `true`: each `run-event`'s data leaves out `runId` (CompactRunEvent; the stream's run is theirs). */
  compact: z.enum(['true', 'false']).optional(),
  /** `true`: the stream stays open after `end` until the run is deleted (then `event: error`, run_not_found). */
  untilDeleted: z.enum(['true', 'false']).optional(),
});

/**
 * The list route's filters (RunsFilterFields), for a live list. Strict, as
 * the list route's query is: a misspelt filter (`parentid`) dropped would
 * silently list every run.
 */
export const RunsFilter = z.strictObject(RunsFilterFields);
export type RunsFilter = z.infer<typeof RunsFilter>;

/** Messages a WebSocket client sends; a field one does not define is refused, naming it, never dropped. */
export const ClientMessage = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('subscribe'),
    runId: nameText().min(1).max(100),
    after: z.number().int().min(0).default(0),
    /** Events in `events` frames without their `runId` (see CompactRunEvent). */
    compact: z.boolean().default(false),
    /** Also `observers` messages: how many watch the run (on every node of a cluster), sent when it changes. */
    observers: z.boolean().default(false),
    /** Stay subscribed after `end`, to be told (error run_not_found, runDeleted) when the run is deleted. */
    untilDeleted: z.boolean().optional(),
  }),
  z.strictObject({ op: z.literal('unsubscribe'), runId: z.string().min(1).max(100) }),
  z.strictObject({ op: z.literal('subscribeRuns'), filter: RunsFilter.default({}) }),
  z.strictObject({ op: z.literal('unsubscribeRuns') }),
  z.strictObject({ op: z.literal('ping') }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

/** Parse a client message, accepting `{"op":"subscribe","runs":{...}}` as `subscribeRuns`. */
export function parseClientMessage(value: unknown): ReturnType<typeof ClientMessage.safeParse> {
  if (typeof value === 'object' && value !== null && (value as { op?: unknown }).op === 'subscribe' && 'runs' in value) {
    return ClientMessage.safeParse({ op: 'subscribeRuns', filter: (value as { runs: unknown }).runs ?? {} });
  }
  return ClientMessage.safeParse(value);
}

/** An event in a frame of a `compact` subscription: a RunEvent without `runId` (the frame's). */
export const CompactRunEventSchema = RunEventSchema.omit({ runId: true }).meta({
  id: 'CompactRunEvent',
  description: "An event in an events frame of a compact subscription: a RunEvent without runId, which is the frame's",
});
export type CompactRunEvent = z.infer<typeof CompactRunEventSchema>;

/** Messages the server sends over WebSocket. */
export const ServerMessageSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('subscribed'), runId: z.string(), after: z.number(), seq: z.number(), status: RunStatus }),
    /** One or more consecutive events of one run, in seq order (compact ones for a `compact` subscription). */
    z.object({ type: z.literal('events'), runId: z.string(), events: z.array(z.union([RunEventSchema, CompactRunEventSchema])) }),
    /** The run's terminal event has been sent; the subscription is complete. */
    z.object({ type: z.literal('end'), runId: z.string(), status: RunStatus, seq: z.number() }),
    /** The subscription of this run ended at the client's request: no frame of it follows. */
    z.object({ type: z.literal('unsubscribed'), runId: z.string() }),
    z.object({ type: z.literal('subscribedRuns') }),
    z.object({ type: z.literal('pong') }),
    z.object({ type: z.literal('run'), change: z.enum(['created', 'updated', 'deleted']), run: RunSchema }),
    /** How many stream subscriptions follow the run now, on every node, this one included (a subscribe with `observers: true`). */
    z.object({ type: z.literal('observers'), runId: z.string(), count: z.number().int().min(0) }),
    z.object({ type: z.literal('error'), runId: z.string().optional(), code: ErrorCodeSchema, message: z.string() }),
  ])
  .meta({ id: 'ServerMessage', description: 'A WebSocket message from the server' });
export type ServerMessage = z.infer<typeof ServerMessageSchema>;
export type EventsMessage = Extract<ServerMessage, { type: 'events' }>;

/** The events of an `events` frame as RunEvents: compact ones get the frame's runId, in place (they are the frame's own objects). */
export function eventsOf(frame: EventsMessage): RunEvent[] {
  for (const event of frame.events) if (!('runId' in event)) (event as RunEvent).runId = frame.runId;
  return frame.events as RunEvent[];
}

/**
 * How every stream says its run was deleted while watched: the code of a
 * run that does not exist (clients stop for it, as for one that never did),
 * with a message that says what happened.
 */
export function runDeleted(runId: string): RuntrailError {
  return new RuntrailError('run_not_found', `run ${runId} was deleted`, { runId });
}

/** SSE event names (the `event:` field); `data:` is JSON. */
export const SSE_EVENTS = { event: 'run-event', end: 'end', error: 'error', observers: 'observers' } as const;

/** What an SSE `observers` record carries (the WebSocket's `observers` message without `type`). */
export interface ObserversCount {
  runId: string;
  count: number;
}

/** What an `end` message carries (WS `end` frame without `type`, SSE `end` data). */
export const StreamEndSchema = z.object({ runId: z.string(), status: RunStatus, seq: z.number() });
export type StreamEnd = z.infer<typeof StreamEndSchema>;
