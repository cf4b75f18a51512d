import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PathParams, invalidRequest, parseOrThrow, routes, type RouteName } from '@runtrail/protocol';
import { QUERY_TOKEN_ROUTES } from '../security/authenticate.js';

export interface ParsedRequest<B, Q> {
  params: Record<string, string>;
  body: B;
  query: Q;
  request: FastifyRequest;
  reply: FastifyReply;
}

type Schema<R extends RouteName, K extends 'body' | 'query'> = (typeof routes)[R] extends { [P in K]: infer S }
  ? S extends { _output: infer O }
    ? O
    : unknown
  : undefined;

/**
 * Register a handler for a route of the shared table. The method, path and
 * validation all come from the table; nothing here restates them.
 */
export function serve<R extends RouteName>(
  app: FastifyInstance,
  name: R,
  handler: (req: ParsedRequest<Schema<R, 'body'>, Schema<R, 'query'>>) => Promise<unknown>,
  options: {
    /** Refuse a request by a cheap look at its raw body before the schema parses all of it (a size limit). */
    precheck?: (body: unknown) => void;
  } = {},
): void {
  const route = routes[name];
  const querySchema = (route as { query?: import('zod').ZodType }).query;
  const knownParams = [
    ...(querySchema && 'shape' in querySchema ? Object.keys(querySchema.shape as object) : []),
    // Read by the auth hook, before the route.
    ...(QUERY_TOKEN_ROUTES.has(name) ? ['token'] : []),
  ];
  app.route({
    method: route.method,
    url: route.path,
    // Names the route for the auth hook, which looks up who may call it.
    config: { routeName: name },
    handler: async (request, reply) => {
      const def = route as { body?: import('zod').ZodType; query?: import('zod').ZodType };
      const params = parseOrThrow(PathParams, request.params ?? {}, 'path');
      options.precheck?.(request.body);
      const body = def.body ? parseOrThrow(def.body, request.body ?? {}, 'request body') : undefined;
      const checked = queryParams(request.query, knownParams);
      const query = def.query ? parseOrThrow(def.query, checked, 'query') : undefined;
      return handler({
        params,
        body: body as Schema<R, 'body'>,
        query: query as Schema<R, 'query'>,
        request,
        reply,
      });
    },
  });
}

/**
 * The query as the route's schema reads it, each parameter once and none
 * it does not know. A repeated one the parser makes an array, which the
 * schema could only call "Invalid input" (or, for two valid statuses,
 * "expected one of" the very values sent); an unknown one the schema
 * would drop, so a typo (`?statuss=running`) silently lost its filter.
 */
function queryParams(query: unknown, known: readonly string[]): unknown {
  const params = (query ?? {}) as Record<string, unknown>;
  const quoted = (value: unknown) => String(value).slice(0, 50);
  const takes = known.length === 0 ? 'this route takes no query parameters' : `this route takes ${known.join(', ')}`;
  const issues = Object.entries(params).flatMap(([name, value]) => {
    if (!known.includes(name)) return [{ path: name.slice(0, 100), message: `is not a parameter of this route; ${takes}` }];
    if (!Array.isArray(value)) return [];
    // A secret is not quoted back (an error travels to logs and screens, as the logs' URLs never carry it); anything else: at most 3 values of 50 characters each.
    if (name === 'token') return [{ path: name, message: `given ${value.length} times; give it once` }];
    return [{ path: name, message: `given ${value.length} times (${value.slice(0, 3).map(quoted).join(', ')}${value.length > 3 ? ', …' : ''}); give it once` }];
  });
  if (issues.length > 0) throw invalidRequest('query', issues);
  return params;
}
