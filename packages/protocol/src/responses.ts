import { z } from 'zod';
import { ListArtifactsResponseSchema, Artifact } from './artifacts.js';
import { CreatedRunTokenSchema, CreatedTokenSchema, ListTokensResponseSchema, RevokedTokenSchema, WhoamiResponseSchema } from './auth.js';
import { DashboardConfigSchema } from './link-preview.js';
import type { RouteName } from './routes.js';
import { AppendEventsResponseSchema, HeartbeatResponseSchema, ListRunsResponseSchema, ReadEventsResponseSchema, RunCountsSchema, RunSchema, RunWithObserversSchema } from './run.js';

/**
 * What the server answers on each route. The schemas live beside their
 * types (which are inferred from them), so the code, the OpenAPI document
 * (openapi.ts) and the typed client calls (`RouteResult`) say the same.
 */
export const HealthResponseSchema = z.object({
  ok: z.boolean(),
  node: z.string(),
  /** This process's id: a process starting under the same node name asks whether it still lives. */
  incarnation: z.string(),
  store: z.string(),
});
export const ReadyResponseSchema = z.object({ ready: z.literal(true), node: z.string(), store: z.string() });
/**
 * What input a handler takes, as far as this node knows: the JSON Schema
 * of its input (converted from the zod schema it was defined with), or why
 * there is none. A handler only other nodes define is never guessed at.
 */
export const HandlerInputSchema = z
  .discriminatedUnion('kind', [
    z.object({
      kind: z.literal('schema'),
      schema: z.record(z.string(), z.unknown()).describe("the input's JSON Schema (draft 2020-12), as this node checks it when a run is created"),
    }),
    z.object({ kind: z.literal('any').describe('this node defines it with no input schema: any input (or none) is passed to it') }),
    z.object({
      kind: z.literal('unconvertible'),
      reason: z.string().describe('why its schema has no JSON Schema (a transform, a date, a schema that is not zod 4, …): this node still checks input when a run is created'),
    }),
    z.object({
      kind: z.literal('elsewhere'),
      nodes: z.array(z.string()).describe('the live nodes that define it: only they know its input schema, and check input when they run it'),
    }),
  ])
  .describe('what input a handler takes, as far as this node knows');
export type HandlerInput = z.infer<typeof HandlerInputSchema>;

/** A live node's executor slots as it last announced them (it announces whenever a run of it starts or ends): why its queued runs wait. */
export const NodeSlotsSchema = z
  .object({
    concurrency: z.number().int().min(0).describe("the node's overall concurrency: runs of any of its handlers at once (0: it claims none)"),
    running: z.number().int().min(0).describe('runs it executes now'),
    handlerConcurrency: z.record(z.string(), z.number().int().min(1)).describe('the handlers defined with a concurrency of their own (runs of it at once on this node): that limit'),
    runningByHandler: z.record(z.string(), z.number().int().min(0)).describe('runs of each handler it executes now; a handler with none is left out'),
  })
  .describe("the node's concurrency limits and how many runs use them; absent from a node that does not announce them (an older version)");
export type NodeSlots = z.infer<typeof NodeSlotsSchema>;

export const HandlersResponseSchema = z.object({
  /** The handlers this node executes. */
  handlers: z.array(z.string()),
  /** Every live node's handlers (this node's included), by node name: which node can execute which runs. */
  nodes: z.array(
    z.object({ node: z.string(), handlers: z.array(z.string()), heardAt: z.number().int(), liveUntil: z.number().int(), slots: NodeSlotsSchema.optional() }),
  ),
  queuedOrphanTimeoutMs: z
    .number()
    .int()
    .min(0)
    .describe('how long queued runs of a handler no live node defines wait before this node\'s reaper ends them failed/orphaned; 0: they wait for ever'),
  /**
   * The handlers of queued runs that this node's reaper found no live node
   * defining, and when their runs end: the reaper counts from the sweep
   * that first found it so (not from when a run was queued, nor from when
   * a node last defined it), and starts over when a node defines it again
   * or after a restart. Another node's reaper, counting on its own, may end
   * them sooner. Empty when queuedOrphanTimeoutMs is 0.
   */
  unclaimable: z
    .array(
      z.object({
        handler: z.string(),
        undefinedSince: z.number().int().describe("when this node's reaper started counting (epoch ms)"),
        endsAt: z.number().int().describe('undefinedSince + queuedOrphanTimeoutMs: its queued runs end failed/orphaned at the first sweep from then (every reaperIntervalMs)'),
      }),
    )
    .describe("handlers of queued runs that this node's reaper finds no live node defining, and when their runs end if none defines them by then"),
  inputs: z
    .array(z.object({ handler: z.string(), nodes: z.array(z.string()).describe('the live nodes that define it'), input: HandlerInputSchema }))
    .describe("every handler a run can be started for through this node (its own and every live node's), sorted by name, with the nodes that define it and what input it takes"),
});
export type HandlersResponse = z.infer<typeof HandlersResponseSchema>;

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
export const routeResponses = {
  health: { status: 200, description: 'The server is up', schema: HealthResponseSchema },
  ready: {
    status: 200,
    description: 'The node can take writes (otherwise 503 `unavailable` with details.reasons)',
    schema: ReadyResponseSchema,
  },
  metrics: { status: 200, description: 'Prometheus text exposition', contentType: 'text/plain; version=0.0.4' },
  createRun: { status: 201, description: 'The new run (200 with the existing run for a repeated Idempotency-Key)', schema: RunSchema },
  listRuns: { status: 200, description: 'A page of runs, newest first', schema: ListRunsResponseSchema },
  countRuns: { status: 200, description: 'How many runs match, by status', schema: RunCountsSchema },
  getRun: { status: 200, description: 'The run with its snapshot and observer count', schema: RunWithObserversSchema },
  deleteRun: { status: 204, description: 'Deleted with its events' },
  appendEvents: { status: 200, description: 'The seqs the events were stored under', schema: AppendEventsResponseSchema },
  readEvents: { status: 200, description: 'Events after `after`, in seq order', schema: ReadEventsResponseSchema },
  finishRun: { status: 200, description: 'The ended run', schema: RunSchema },
  heartbeat: { status: 200, description: 'The renewed lease, and whether a cancel was requested', schema: HeartbeatResponseSchema },
  cancelRun: { status: 200, description: 'The run (ended at once if queued or if nothing owns it)', schema: RunSchema },
  retryRun: { status: 201, description: 'The new run (retryOf, attempt + 1); 200 with the same run for a repeated Idempotency-Key', schema: RunSchema },
  streamRun: {
    status: 200,
    description: 'Server-Sent Events: `run-event` (id = seq, data = RunEvent), then `end` (data = {runId, status, seq})',
    contentType: 'text/event-stream',
  },
  stream: {
    status: 101,
    description: 'WebSocket upgrade; client messages are ClientMessage, server messages ServerMessage (components)',
  },
  listHandlers: { status: 200, description: 'Handlers this node executes, and those of every live node', schema: HandlersResponseSchema },
  openapi: {
    status: 200,
    description: 'The OpenAPI 3.1 document',
    schema: z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.record(z.string(), z.unknown()) }),
  },
  apiDocs: { status: 200, description: 'An HTML page', contentType: 'text/html' },
  whoami: { status: 200, description: 'Whether auth is on, and what the token is (null: no valid token)', schema: WhoamiResponseSchema },
  dashboardConfig: { status: 200, description: 'The settings the dashboard follows', schema: DashboardConfigSchema },
  createToken: { status: 201, description: 'The token; its secret is shown this once', schema: CreatedTokenSchema },
  listTokens: { status: 200, description: 'Every token, newest first, without secrets', schema: ListTokensResponseSchema },
  revokeToken: { status: 200, description: 'Revoked, by this call or (alreadyRevoked) an earlier one, and when; its streams close', schema: RevokedTokenSchema },
  createRunToken: { status: 201, description: 'A token for this run and its children', schema: CreatedRunTokenSchema },
  putArtifact: { status: 201, description: 'The stored artifact (200 when the same content was already stored under the name)', schema: Artifact },
  listArtifacts: { status: 200, description: "The run's artifacts in ordinal order", schema: ListArtifactsResponseSchema },
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
} as const satisfies { [R in RouteName]: RouteResponse };

/** What a successful call of route R answers: its JSON body, or undefined for a route without one. */
export type RouteResult<R extends RouteName> = (typeof routeResponses)[R] extends { schema: infer S extends z.ZodType }
  ? z.output<S>
  : undefined;
