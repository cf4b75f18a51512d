import { z } from 'zod';
import { CLIENT_HEADER } from './auth.js';
import { ErrorBodySchema, errorStatus } from './errors.js';
import { routeResponses, type RouteResponse } from './responses.js';
import { routes, type RouteDef, type RouteName } from './routes.js';
import { ClientMessage, ServerMessageSchema } from './stream.js';

type Json = Record<string, unknown>;

const ClientMessageSchema = ClientMessage.meta({ id: 'ClientMessage', description: 'A WebSocket message from a client' });

/**
 * The header a write without a JSON body sends (a DELETE, a retry, an
 * upload, an import): the server refuses a POST, PUT or DELETE that has
 * neither `content-type: application/json`, this header nor Authorization
 * with 403 (cross-site request forgery protection). Required here, since a
 * client made from this document (and Swagger UI's "Try it out") sends
 * what it says and nothing else.
 */
const clientHeaderParameter: Json = {
  name: CLIENT_HEADER,
  in: 'header',
  required: true,
  description:
    'Any value (the SDKs send 1). A POST, PUT or DELETE without a JSON body needs it, unless it sends Authorization: else 403 forbidden (cross-site request forgery protection).',
  schema: { type: 'string' },
  example: '1',
};

/** Auth as a client made from this document sees it: a bearer token on a server with auth on, nothing on one with auth off. */
const BEARER_SCHEME = 'bearer';
const securitySchemes: Record<string, Json> = {
  [BEARER_SCHEME]: {
    type: 'http',
    scheme: 'bearer',
    description:
      'Authorization: Bearer <token> (an admin token, a token from POST /api/v1/tokens or a run token) on a server with auth on; a server with auth off needs none.',
  },
};

/** `/api/v1/runs/:id/events` → `/api/v1/runs/{id}/events` */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z]+)/g, '{$1}');
}

/**
 * The OpenAPI 3.1 description of the HTTP API, generated from the route
 * table and the same zod schemas that validate requests and describe
 * responses, so it cannot drift from the code. Served at
 * `/api/v1/openapi.json`; docs/api.md is rendered from it.
 */
export function openApiDocument(options: { version?: string } = {}): Json {
  const components: Record<string, Json> = {};
  /** JSON Schema of a zod schema; named parts (`.meta({id})`) become shared components. */
  const schemaOf = (schema: z.ZodType, io: 'input' | 'output'): Json => {
    const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
    const { $defs, $schema: _dialect, ...rest } = json as Json & { $defs?: Record<string, Json>; $schema?: string };
    for (const [id, def] of Object.entries($defs ?? {})) components[id] = refsToComponents(def) as Json;
    // A schema that is itself a named component is referenced, not inlined.
    const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
    if (id) {
      // zod puts a named root in $defs and answers with a $ref to it.
      if (rest.$ref === undefined) components[id] = refsToComponents(rest) as Json;
      return { $ref: `#/components/schemas/${id}` };
    }
    return refsToComponents(rest) as Json;
  };

  const errorRef = schemaOf(ErrorBodySchema, 'output');
  const paths: Record<string, Record<string, Json>> = {};
  for (const name of Object.keys(routes) as RouteName[]) {
    const route: RouteDef = routes[name];
    const answer: RouteResponse = routeResponses[name];
    const parameters: Json[] = [...route.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    if (route.query) {
      const query = schemaOf(route.query, 'input') as { properties?: Record<string, Json>; required?: string[] };
      for (const [param, schema] of Object.entries(query.properties ?? {})) {
        parameters.push({ name: param, in: 'query', required: query.required?.includes(param) ?? false, schema });
      }
    }
    // The headers the route reads, so a client made from this document sends them (an Idempotency-Key on a retried create).
    for (const header of route.headers ?? []) {
      parameters.push({ name: header.name, in: 'header', required: false, description: header.description, schema: { type: 'string' }, example: header.example });
    }
    if (route.method !== 'GET' && !route.body) parameters.push(clientHeaderParameter);
    const success: Json = { description: answer.description };
    if (answer.schema) success.content = { 'application/json': { schema: schemaOf(answer.schema, 'output') } };
    else if (answer.contentType) success.content = { [answer.contentType]: { schema: { type: 'string' } } };
    const operation: Json = {
      operationId: name,
      summary: route.summary,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(route.body, 'input') } } } }
        : {}),
      ...(route.rawBody ? { requestBody: { required: true, content: { [route.rawBody]: { schema: { type: 'string', format: 'binary' } } } } } : {}),
      responses: {
        [String(answer.status)]: success,
        default: {
          description: `An error: \`{"error": {"code", "message", "details"}}\` with the HTTP status of its code (${Object.entries(errorStatus)
            .map(([code, status]) => `${code} ${status}`)
            .join(', ')})`,
          content: { 'application/json': { schema: errorRef } },
        },
      },
    };
    (paths[openApiPath(route.path)] ??= {})[route.method.toLowerCase()] = operation;
  }
  // Stream messages are not HTTP bodies, but clients in other languages need them too.
  schemaOf(ServerMessageSchema, 'output');
  schemaOf(ClientMessageSchema, 'input');

  return {
    openapi: '3.1.0',
    info: {
      title: 'runtrail',
      version: options.version ?? '0.1.0',
      description:
        'Live progress of long-running runs, from a durable event log. Times are epoch milliseconds. ' +
        'Live streams: Server-Sent Events at GET /api/v1/runs/{id}/stream and a WebSocket at GET /api/v1/stream ' +
        '(ClientMessage in, ServerMessage out).',
    },
    // Either no auth (a server with auth off) or a bearer token.
    security: [{}, { [BEARER_SCHEME]: [] }],
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes,
    },
  };
}

function refsToComponents(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(refsToComponents);
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof v === 'string' ? v.replace(/^#\/\$defs\//, '#/components/schemas/') : refsToComponents(v);
  }
  return out;
}
