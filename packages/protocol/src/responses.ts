import { z } from 'zod';
import { errorStatus, type ErrorBody } from './errors.js';
import { Artifact } from './artifacts.js';
import { LogLevel, RunError, type RunEvent } from './events.js';
import type { RouteName } from './routes.js';
import { Owner, RunStatus, type AppendEventsResponse, type HeartbeatResponse, type ListRunsResponse, type ReadEventsResponse, type Run, type RunWithObservers } from './run.js';
import type { Snapshot } from './snapshot.js';
import type { ServerMessage, StreamEnd } from './stream.js';
import type { CreatedToken, TokenInfo, WhoamiResponse } from './auth.js';

/**
 * Schemas of what the server sends: responses and stream messages. They
 * describe the API in the OpenAPI document (openapi.ts); the `_Same` checks
 * at the bottom make the compiler fail if one drifts from the TypeScript
 * type the code uses.
 */
const CallInFlightSchema = z.object({ callId: z.string(), label: z.string(), startedAt: z.number(), attempt: z.number() });
const PhaseRecordSchema = z.object({
  name: z.string(),
  status: z.enum(['started', 'completed', 'failed']),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  durationMs: z.number().nullable(),
  timeoutMs: z.number().nullable(),
});
const MetricSummarySchema = z.object({
  last: z.number(),
  min: z.number(),
  max: z.number(),
  count: z.number(),
  step: z.number().nullable(),
  ts: z.number(),
  recent: z.array(z.tuple([z.number(), z.number()])).describe('latest points as [step (or seq), value]'),
});
const TerminalStatusSchema = z.enum(['succeeded', 'failed', 'cancelled']);

export const SnapshotSchema = z
  .object({
    seq: z.number().describe('seq of the last event folded in'),
    counters: z.object({ ok: z.number(), failed: z.number(), retries: z.number(), named: z.record(z.string(), z.number()) }),
    current: z.record(z.string(), CallInFlightSchema).describe('in-flight calls by callId'),
    phase: z.string().nullable(),
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
    logs: z.array(z.object({ seq: z.number(), ts: z.number(), level: LogLevel, message: z.string() })),
    lastError: z.object({ message: z.string(), callId: z.string().nullable(), seq: z.number(), ts: z.number() }).nullable(),
    artifacts: z.array(
      z.object({
        seq: z.number(),
        ts: z.number(),
        name: z.string(),
        uri: z.string().nullable(),
        contentType: z.string().nullable(),
        size: z.number().nullable(),
        ordinal: z.number().nullable().describe('stored artifacts: 1, 2, … per run; null for a link'),
        sha256: z.string().nullable(),
        metadata: z.unknown(),
      }),
    ),
    stalled: z.object({ at: z.number(), stallTimeoutMs: z.number(), lastProgressAt: z.number().nullable() }).nullable(),
    cancelRequested: z.boolean(),
    startedAt: z.number().nullable(),
    lastEventAt: z.number().nullable(),
    lastProgressAt: z.number().nullable(),
    terminal: z
      .object({ status: TerminalStatusSchema, at: z.number(), seq: z.number(), error: RunError.nullable(), output: z.unknown() })
      .nullable(),
  })
  .meta({ id: 'Snapshot', description: 'The fold of a run’s events by the shared reducer' });

export const RunSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    parentId: z.string().nullable(),
    status: RunStatus,
    createdAt: z.number(),
    startedAt: z.number().nullable(),
    finishedAt: z.number().nullable(),
    input: z.unknown(),
    labels: z.record(z.string(), z.string()),
    error: RunError.nullable(),
    output: z.unknown(),
    seq: z.number().describe("seq of the run's last event (0 before the first)"),
    snapshot: SnapshotSchema,
    execute: z.boolean(),
    owner: Owner.nullable(),
    leaseTtlMs: z.number(),
    leaseExpiresAt: z.number().nullable(),
    heartbeatAt: z.number().nullable(),
    cancelRequestedAt: z.number().nullable(),
    timeoutMs: z.number().nullable(),
    stallTimeoutMs: z.number().nullable(),
    failOnStall: z.boolean(),
    retryOf: z.string().nullable(),
    attempt: z.number(),
  })
  .meta({ id: 'Run', description: 'A run as every API returns it; times are epoch milliseconds' });

export const RunWithObserversSchema = RunSchema.extend({
  observers: z.number().describe('WS and SSE subscriptions following the run on the node that answered'),
}).meta({ id: 'RunWithObservers' });

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

export const ListRunsResponseSchema = z.object({ runs: z.array(RunSchema), nextCursor: z.string().nullable() });
export const AppendEventsResponseSchema = z.object({
  seq: z.number(),
  seqs: z.array(z.number()).describe('seq of each event of the batch, in order (the original seq for a duplicate id)'),
  cancelRequested: z.boolean(),
});
export const ReadEventsResponseSchema = z.object({ events: z.array(RunEventSchema), seq: z.number(), status: RunStatus });
export const HeartbeatResponseSchema = z.object({
  leaseExpiresAt: z.number().nullable(),
  cancelRequested: z.boolean(),
  status: RunStatus,
});
export const HealthResponseSchema = z.object({ ok: z.boolean(), node: z.string(), store: z.string() });
export const ReadyResponseSchema = z.object({ ready: z.literal(true), node: z.string(), store: z.string() });
export const HandlersResponseSchema = z.object({ handlers: z.array(z.string()) });

const ErrorCodeSchema = z.enum(Object.keys(errorStatus) as [keyof typeof errorStatus, ...Array<keyof typeof errorStatus>]);
export const ErrorBodySchema = z
  .object({ error: z.object({ code: ErrorCodeSchema, message: z.string(), details: z.unknown().optional() }) })
  .meta({ id: 'Error', description: 'Every error: a stable code, a message saying what to do, details' });

export const StreamEndSchema = z.object({ runId: z.string(), status: RunStatus, seq: z.number() });

/** WebSocket messages from the server (`GET /api/v1/stream`). */
export const ServerMessageSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('subscribed'), runId: z.string(), after: z.number(), seq: z.number(), status: RunStatus }),
    z.object({ type: z.literal('events'), runId: z.string(), events: z.array(RunEventSchema) }),
    z.object({ type: z.literal('end'), runId: z.string(), status: RunStatus, seq: z.number() }),
    z.object({ type: z.literal('subscribedRuns') }),
    z.object({ type: z.literal('pong') }),
    z.object({ type: z.literal('run'), change: z.enum(['created', 'updated', 'deleted']), run: RunSchema }),
    z.object({ type: z.literal('error'), runId: z.string().optional(), code: ErrorCodeSchema, message: z.string() }),
  ])
  .meta({ id: 'ServerMessage', description: 'A WebSocket message from the server' });

const TokenScopeSchema = z.enum(['admin', 'producer', 'viewer']);
const TokenInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  scope: TokenScopeSchema,
  createdAt: z.number(),
  expiresAt: z.number().nullable(),
  revokedAt: z.number().nullable(),
});
const CreatedTokenSchema = z.object({ id: z.string(), name: z.string(), scope: TokenScopeSchema, token: z.string(), expiresAt: z.number().nullable() });
const WhoamiResponseSchema = z.object({
  auth: z.boolean(),
  principal: z
    .discriminatedUnion('kind', [
      z.object({ kind: z.literal('open') }),
      z.object({ kind: z.literal('scoped'), id: z.string(), name: z.string(), scope: TokenScopeSchema, expiresAt: z.number().nullable() }),
      z.object({ kind: z.literal('run'), runId: z.string(), expiresAt: z.number() }),
    ])
    .nullable(),
});

export interface RouteResponse {
  status: number;
  description: string;
  /** JSON body; absent for an empty body. */
  schema?: z.ZodType;
  /** A non-JSON body (SSE, Prometheus text). */
  contentType?: string;
}

/**
 * The success answer of every route, keyed by route name: a route added to
 * the table without its response here does not compile. Errors are the
 * `Error` body with the status of their code (errors.ts).
 */
export const routeResponses: { [R in RouteName]: RouteResponse } = {
  health: { status: 200, description: 'The server is up', schema: HealthResponseSchema },
  ready: {
    status: 200,
    description: 'The node can take writes (otherwise 503 `unavailable` with details.reasons)',
    schema: ReadyResponseSchema,
  },
  metrics: { status: 200, description: 'Prometheus text exposition', contentType: 'text/plain; version=0.0.4' },
  createRun: { status: 201, description: 'The new run (200 with the existing run for a repeated Idempotency-Key)', schema: RunSchema },
  listRuns: { status: 200, description: 'A page of runs, newest first', schema: ListRunsResponseSchema },
  getRun: { status: 200, description: 'The run with its snapshot and observer count', schema: RunWithObserversSchema },
  deleteRun: { status: 204, description: 'Deleted with its events' },
  appendEvents: { status: 200, description: 'The seqs the events were stored under', schema: AppendEventsResponseSchema },
  readEvents: { status: 200, description: 'Events after `after`, in seq order', schema: ReadEventsResponseSchema },
  finishRun: { status: 200, description: 'The ended run', schema: RunSchema },
  heartbeat: { status: 200, description: 'The renewed lease, and whether a cancel was requested', schema: HeartbeatResponseSchema },
  cancelRun: { status: 200, description: 'The run (ended at once if queued or if nothing owns it)', schema: RunSchema },
  retryRun: { status: 201, description: 'The new run (retryOf, attempt + 1)', schema: RunSchema },
  streamRun: {
    status: 200,
    description: 'Server-Sent Events: `run-event` (id = seq, data = RunEvent), then `end` (data = {runId, status, seq})',
    contentType: 'text/event-stream',
  },
  stream: {
    status: 101,
    description: 'WebSocket upgrade; client messages are ClientMessage, server messages ServerMessage (components)',
  },
  listHandlers: { status: 200, description: 'Handlers this node executes', schema: HandlersResponseSchema },
  openapi: {
    status: 200,
    description: 'The OpenAPI 3.1 document',
    schema: z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.record(z.string(), z.unknown()) }),
  },
  apiDocs: { status: 200, description: 'An HTML page', contentType: 'text/html' },
  whoami: { status: 200, description: 'Whether auth is on, and what the token is (null: no valid token)', schema: WhoamiResponseSchema },
  createToken: { status: 201, description: 'The token; its secret is shown this once', schema: CreatedTokenSchema },
  listTokens: { status: 200, description: 'Every token, newest first, without secrets', schema: z.object({ tokens: z.array(TokenInfoSchema) }) },
  revokeToken: { status: 204, description: 'Revoked; its streams close' },
  createRunToken: { status: 201, description: 'A token for this run and its children', schema: z.object({ token: z.string(), expiresAt: z.number() }) },
  putArtifact: { status: 201, description: 'The stored artifact (200 when the same content was already stored under the name)', schema: Artifact },
  listArtifacts: { status: 200, description: "The run's artifacts in ordinal order", schema: z.object({ artifacts: z.array(Artifact) }) },
  exportRun: { status: 200, description: 'A tar archive: runtrail-export.json, run.json, events/NNNNNN.ndjson, artifacts.json, blobs/<sha256>', contentType: 'application/x-tar' },
  importRun: { status: 201, description: 'The imported run', schema: RunSchema },
  getArtifact: {
    status: 200,
    description: 'The content, with its Content-Type, Content-Length, ETag (its sha256) and Content-Disposition; 206 for a Range',
    contentType: 'application/octet-stream',
  },
  runLog: {
    status: 200,
    description: 'The output log as text, with Content-Length and Content-Disposition (attachment); 206 for a Range',
    contentType: 'text/plain',
  },
};

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** Compile-time: each schema describes exactly the type the code uses. */
export type _SchemasMatchTypes = [
  Assert<Same<z.infer<typeof SnapshotSchema>, Snapshot>>,
  Assert<Same<z.infer<typeof RunSchema>, Run>>,
  Assert<Same<z.infer<typeof RunWithObserversSchema>, RunWithObservers>>,
  Assert<Same<z.infer<typeof RunEventSchema>, RunEvent>>,
  Assert<Same<z.infer<typeof ListRunsResponseSchema>, ListRunsResponse>>,
  Assert<Same<z.infer<typeof AppendEventsResponseSchema>, AppendEventsResponse>>,
  Assert<Same<z.infer<typeof ReadEventsResponseSchema>, ReadEventsResponse>>,
  Assert<Same<z.infer<typeof HeartbeatResponseSchema>, HeartbeatResponse>>,
  Assert<Same<z.infer<typeof ErrorBodySchema>, ErrorBody>>,
  Assert<Same<z.infer<typeof StreamEndSchema>, StreamEnd>>,
  Assert<Same<z.infer<typeof ServerMessageSchema>, ServerMessage>>,
  Assert<Same<z.infer<typeof WhoamiResponseSchema>, WhoamiResponse>>,
  Assert<Same<z.infer<typeof TokenInfoSchema>, TokenInfo>>,
  Assert<Same<z.infer<typeof CreatedTokenSchema>, CreatedToken>>,
];
