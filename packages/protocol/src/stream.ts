import { z } from 'zod';
import type { RunEvent } from './events.js';
import type { ErrorCode } from './errors.js';
import type { Run, RunStatus } from './run.js';

/**
 * The live subscription protocol, shared by the WebSocket transport, SSE and
 * the watcher SDK. A subscriber always says where it is (`after` = the last
 * seq it has); the server sends everything after it, backlog then live, in
 * seq order, with no gap and no duplicate (field note 1).
 */

export const StreamRunQuery = z.object({
  after: z.coerce.number().int().min(0).optional(),
});

const RunsFilter = z.object({
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
  name: z.string().min(1).max(200).optional(),
  parentId: z.string().min(1).max(100).optional(),
});
export type RunsFilter = z.infer<typeof RunsFilter>;

/** Messages a WebSocket client sends. */
export const ClientMessage = z.discriminatedUnion('op', [
  z.object({
    op: z.literal('subscribe'),
    runId: z.string().min(1).max(100),
    after: z.number().int().min(0).default(0),
  }),
  z.object({ op: z.literal('unsubscribe'), runId: z.string().min(1).max(100) }),
  z.object({ op: z.literal('subscribeRuns'), filter: RunsFilter.default({}) }),
  z.object({ op: z.literal('unsubscribeRuns') }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

/** Messages the server sends over WebSocket. */
export type ServerMessage =
  | { type: 'subscribed'; runId: string; after: number; seq: number; status: RunStatus }
  /** One or more consecutive events of one run, in seq order. */
  | { type: 'events'; runId: string; events: RunEvent[] }
  /** The run's terminal event has been sent; the subscription is complete. */
  | { type: 'end'; runId: string; status: RunStatus; seq: number }
  | { type: 'run'; change: 'created' | 'updated' | 'deleted'; run: Run }
  | { type: 'error'; runId?: string; code: ErrorCode; message: string };

/** SSE event names (the `event:` field); `data:` is JSON. */
export const SSE_EVENTS = { event: 'run-event', end: 'end', error: 'error' } as const;
