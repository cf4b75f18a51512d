import type { z } from 'zod';
import {
  AppendEventsBody,
  CancelRunBody,
  CreateRunBody,
  FinishRunBody,
  HeartbeatBody,
  HeartbeatQuery,
  ListRunsQuery,
  ReadEventsQuery,
} from './run.js';
import { RunsFilter, StreamRunQuery } from './stream.js';
import { CreateRunTokenBody, CreateTokenBody } from './auth.js';
import { ExportRunQuery, PutArtifactQuery } from './artifacts.js';
import { invalidRequest } from './validate.js';
import {
  artifactMetadataHeader,
  idempotencyKeyHeader,
  ifNoneMatchHeader,
  ifRangeHeader,
  lastEventIdHeader,
  rangeHeader,
  type HeaderDef,
} from './request-headers.js';

/**
 * Every HTTP route of runtrail, defined once. The server registers exactly
 * these (and validates with the schemas given here); the client SDK builds
 * every URL from this table with `buildPath`, and a contract test checks
 * that each path the SDK can build is served (field note 2). The request
 * headers a route reads are declared here too (`headers`), for the OpenAPI
 * document, the docs and the CORS preflight.
 */
export interface RouteDef {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  summary: string;
  body?: z.ZodType;
  /** Media type of a raw (non-JSON) request body, read as a stream by its route. */
  rawBody?: string;
  query?: z.ZodType;
  /** The optional request headers this route reads (see HeaderDef); the server reads no other but those every route has. */
  headers?: readonly HeaderDef[];
}

export const API_PREFIX = '/api/v1';

export const routes = {
  health: { method: 'GET', path: '/healthz', summary: 'Liveness: always 200 while the process runs; never waits on the store' },
  ready: {
    method: 'GET',
    path: '/readyz',
    summary: 'Readiness: 200 when this node can take writes; otherwise 503 `unavailable` with details.reasons (store locked, unreachable, read-only, file deleted, node shutting down)',
  },
  metrics: { method: 'GET', path: '/metrics', summary: 'Prometheus metrics' },
  createRun: {
    method: 'POST',
    path: `${API_PREFIX}/runs`,
    summary: 'Create a run (honours Idempotency-Key); 201 with the run',
    body: CreateRunBody,
    headers: [idempotencyKeyHeader('the run that key created', 'already used for a run of another name', 'nightly-2026-11-28')],
  },
  listRuns: {
    method: 'GET',
    path: `${API_PREFIX}/runs`,
    summary: 'List runs, newest first: {runs, nextCursor}',
    query: ListRunsQuery,
  },
  countRuns: {
    method: 'GET',
    path: `${API_PREFIX}/run-counts`,
    summary: "How many runs match the list's filters, by status, over every page: {total, byStatus, stalled}",
    query: RunsFilter,
  },
  getRun: { method: 'GET', path: `${API_PREFIX}/runs/:id`, summary: 'A run with its snapshot, seq and observer count' },
  deleteRun: { method: 'DELETE', path: `${API_PREFIX}/runs/:id`, summary: 'Delete an ended run with its events and every run under it (409 while any of them runs)' },
  appendEvents: {
    method: 'POST',
    path: `${API_PREFIX}/runs/:id/events`,
    summary: 'Append a batch of events: {seq, seqs}',
    body: AppendEventsBody,
  },
  readEvents: {
    method: 'GET',
    path: `${API_PREFIX}/runs/:id/events`,
    summary: 'Read events after a seq: {events, seq, status}',
    query: ReadEventsQuery,
  },
  finishRun: {
    method: 'POST',
    path: `${API_PREFIX}/runs/:id/finish`,
    summary: 'Write the one terminal event; 409 with the existing end if already ended',
    body: FinishRunBody,
  },
  heartbeat: {
    method: 'POST',
    path: `${API_PREFIX}/runs/:id/heartbeat`,
    summary: "Renew the owner's lease; says whether a cancel was requested (?waitMs= holds the answer until one is, or the run ends)",
    body: HeartbeatBody,
    query: HeartbeatQuery,
  },
  cancelRun: {
    method: 'POST',
    path: `${API_PREFIX}/runs/:id/cancel`,
    summary: 'Ask the owner to stop; the run ends cancelled',
    body: CancelRunBody,
  },
  retryRun: {
    method: 'POST',
    path: `${API_PREFIX}/runs/:id/retry`,
    summary: 'Create a new attempt of a handler run (same input, linked by retryOf; honours Idempotency-Key); 409 run_not_retryable for a run no handler executes',
    headers: [idempotencyKeyHeader('the attempt that key made', 'already used for anything but a retry of this run', 'retry-nightly-2026-11-28')],
  },
  streamRun: {
    method: 'GET',
    path: `${API_PREFIX}/runs/:id/stream`,
    summary: 'Server-Sent Events of one run (id: seq; honours Last-Event-ID and ?after=)',
    query: StreamRunQuery,
    headers: [lastEventIdHeader],
  },
  stream: {
    method: 'GET',
    path: `${API_PREFIX}/stream`,
    summary: 'WebSocket: many subscriptions over one connection',
  },
  whoami: {
    method: 'GET',
    path: `${API_PREFIX}/whoami`,
    summary: "Whether auth is on and what the request's token may do: {auth, principal}",
  },
  dashboardConfig: {
    method: 'GET',
    path: `${API_PREFIX}/dashboard-config`,
    summary:
      "What the dashboard needs of this server's settings: {linkPreviewHosts}, the origins whose linked artifacts it may preview in the page (the same ones its Content-Security-Policy allows)",
  },
  createToken: {
    method: 'POST',
    path: `${API_PREFIX}/tokens`,
    summary: 'Mint a scoped token (admin); 201 {id, name, scope, token, expiresAt}, the secret shown once',
    body: CreateTokenBody,
  },
  listTokens: { method: 'GET', path: `${API_PREFIX}/tokens`, summary: 'List tokens without their secrets (admin): {tokens}' },
  revokeToken: {
    method: 'DELETE',
    path: `${API_PREFIX}/tokens/:id`,
    summary: "Revoke a scoped token, or a run token by the id it was minted with (admin; a producer token: the run tokens it minted); its open streams close, on every node within seconds. 200 {id, revokedAt, alreadyRevoked}: a token revoked before is no error, alreadyRevoked says so and revokedAt when",
  },
  createRunToken: {
    method: 'POST',
    path: `${API_PREFIX}/runs/:id/tokens`,
    summary: 'Mint a token that reads and watches this run and its children only (producer); 201 {id, token, expiresAt, write}, revoked by DELETE /api/v1/tokens/{id}',
    body: CreateRunTokenBody,
  },
  putArtifact: {
    method: 'PUT',
    path: `${API_PREFIX}/runs/:id/artifacts/:name`,
    summary:
      'Store an artifact: the raw body is its content (streamed), Content-Type its type (else sniffed), x-runtrail-metadata its JSON metadata; 201 with the record, 200 if identical content is already stored under that name, 409 if different content is (unless ?replace=true)',
    query: PutArtifactQuery,
    rawBody: '*/*',
    headers: [artifactMetadataHeader],
  },
  listArtifacts: {
    method: 'GET',
    path: `${API_PREFIX}/runs/:id/artifacts`,
    summary: "A run's artifacts in ordinal order: {artifacts}",
  },
  getArtifact: {
    method: 'GET',
    path: `${API_PREFIX}/runs/:id/artifacts/:name`,
    summary: 'The content of an artifact, streamed, with ETag (its sha256) and range requests (206)',
    headers: [rangeHeader('the content'), ifRangeHeader, ifNoneMatchHeader],
  },
  runLog: {
    method: 'GET',
    path: `${API_PREFIX}/runs/:id/log`,
    summary:
      "The run's whole output log as this server wrote it (a subprocess's stdout lines as printed, stderr lines prefixed `[stderr] `), streamed as text/plain with range requests (206); a 307 to the run's output.log artifact when the log was stored as one (`runtrail exec` against a server on another host); 404 log_not_found saying where the output went when this server has no log of it (a log file on another host, or only log events)",
    // No If-Range: the log has no ETag, and a running command's log only grows, so an earlier byte never changes.
    headers: [rangeHeader('the log as it is when asked (a running command\'s log grows)')],
  },
  exportRun: {
    method: 'GET',
    path: `${API_PREFIX}/runs/:id/export`,
    summary:
      'The whole run (record, every event, every artifact) as one tar archive; x-runtrail-run-status names its status (an import takes only ended runs). ' +
      'Streamed, with no Content-Length: x-runtrail-export-estimated-bytes says about how many bytes it will have, for a progress display (exact for records and artifact content, events estimated from a sample). ' +
      '`?family=true`: the run with every run under it, parents first, in one archive (format version 2; x-runtrail-export-runs says how many runs); ' +
      '409 run_not_terminal naming a run of it that has not ended, 413 past maxImportRuns runs',
    query: ExportRunQuery,
  },
  importRun: {
    method: 'POST',
    path: `${API_PREFIX}/import`,
    summary:
      'Load an exported tar archive (the raw body; admin); 201 with the run, keeping its id (409 if that id exists here, details.differs naming what differs from the archive when it does; or 200 with it when every run of the archive is here as the archive holds it: a repeated import); 400 for a truncated, malformed or unsafe archive, 413 past maxImportBytes bytes, each changing nothing. ' +
      'A family archive loads every run in it in one transaction, all or none (x-runtrail-imported-runs says how many): 409 run_already_exists naming every run of it that exists here, ' +
      '400 naming a run that has not ended or whose parent is neither in the archive nor here, 413 past maxImportRuns runs or maxImportBytes bytes',
    rawBody: 'application/x-tar',
  },
  listHandlers: {
    method: 'GET',
    path: `${API_PREFIX}/handlers`,
    summary:
      'Names of the handlers this node can execute, which live node executes which (nodes, from the registry every node keeps in the store), ' +
      "each live node's slots (its concurrency and each handler's, and how many runs use them now: why a queued run of a defined handler waits), " +
      "and when queued runs of a handler no live node defines end failed/orphaned: queuedOrphanTimeoutMs (0: they wait for ever), and unclaimable, each such handler's " +
      "undefinedSince (when this node's reaper first found no live node defining it; it starts over when one does, or when the node restarts) and endsAt (undefinedSince + queuedOrphanTimeoutMs; another node's reaper may end them sooner). " +
      "inputs: each handler a run can be started for here, the live nodes that define it, and its input as JSON Schema where this node defines it " +
      "(or why not: defined with no schema, a schema JSON Schema cannot express, or defined only on other nodes, whose schemas this node does not know)",
  },
  openapi: {
    method: 'GET',
    path: `${API_PREFIX}/openapi.json`,
    summary: 'This API as an OpenAPI 3.1 document (generated from the route table and its zod schemas)',
  },
  apiDocs: { method: 'GET', path: '/api/docs', summary: 'The API reference as a page (Swagger UI, served from this server)' },
} as const satisfies Record<string, RouteDef>;

export type RouteName = keyof typeof routes;

/** Every request header some route declares, once each, in the table's order (the CORS preflight allows these). */
export function declaredRequestHeaders(): string[] {
  return [...new Set(Object.values(routes as Record<string, RouteDef>).flatMap((route) => (route.headers ?? []).map((h) => h.name)))];
}

type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never;

export type RouteParams<R extends RouteName> = {
  [K in ParamNames<(typeof routes)[R]['path']>]: string;
};

/** The JSON body route R takes, as a caller writes it (fields with defaults may be left out); never for a route without one. */
export type RouteBody<R extends RouteName> = R extends RouteName ? ((typeof routes)[R] extends { body: infer S extends z.ZodType } ? z.input<S> : never) : never;

/** The query route R reads, as a caller writes it; never for a route without one. */
export type RouteQuery<R extends RouteName> = R extends RouteName ? ((typeof routes)[R] extends { query: infer S extends z.ZodType } ? z.input<S> : never) : never;

/** The path of a route with its params filled in and an optional query string (undefined values left out). */
export function buildPath<R extends RouteName>(
  name: R,
  params: RouteParams<R>,
  query?: Readonly<Record<string, unknown>>,
): string {
  const template: string = routes[name].path;
  const path = template.replace(/:([A-Za-z]+)/g, (_, key: string) => {
    const value: unknown = (params as Record<string, unknown>)[key];
    // An id from an unset variable (undefined, '') would otherwise reach another route or say "run  does not exist".
    if (typeof value !== 'string' || value === '') {
      const given = value === undefined ? 'undefined' : typeof value === 'string' ? 'an empty string' : `a ${typeof value} (${String(value)})`;
      throw invalidRequest(`${name} path`, [{ path: key, message: `must be a non-empty string, not ${given}` }]);
    }
    return encodeURIComponent(value);
  });
  if (!query) return path;
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) search.set(k, String(v));
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

/**
 * The dashboard's own pages, defined once: the server answers them with the
 * app (a reload or a shared link must not 404), the app routes by them and
 * links to them, the CLI prints them.
 */
export const DASHBOARD_RUN_PATH = '/runs/:id';

/** The dashboard page of one run. */
export function dashboardRunPath(runId: string): string {
  return DASHBOARD_RUN_PATH.replace(':id', encodeURIComponent(runId));
}

/**
 * The run id of a dashboard run page path, or null for any other path. A
 * segment whose escapes do not decode (a link cut short: `/runs/%E0%A4%A`)
 * is the id as written: decodeURIComponent's URIError would take the whole
 * dashboard down, where the page should say there is no such run.
 */
export function matchDashboardRunPath(path: string): string | null {
  const match = /^\/runs\/([^/]+)\/?$/.exec(path);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]!);
  } catch (err) {
    if (err instanceof URIError) return match[1]!;
    throw err;
  }
}
