import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PathParams, invalidRequest, parseOrThrow, routes, type RouteName } from '@runtrail/protocol';

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
      const query = def.query ? parseOrThrow(def.query, onceEach(request.query), 'query') : undefined;
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
 * No query parameter takes several values: the parser makes a repeated one
 * an array, which the schema could only call "Invalid input" (or, for two
 * valid statuses, "expected one of" the very values sent).
 */
function onceEach(query: unknown): unknown {
  const params = (query ?? {}) as Record<string, unknown>;
  const issues = Object.entries(params)
    .filter((entry): entry is [string, unknown[]] => Array.isArray(entry[1]))
    .map(([name, values]) => ({
      path: name,
      // At most 3 values of 50 characters each are quoted back.
      message: `given ${values.length} times (${values.slice(0, 3).map((v) => String(v).slice(0, 50)).join(', ')}${values.length > 3 ? ', …' : ''}); give it once`,
    }));
  if (issues.length > 0) throw invalidRequest('query', issues);
  return params;
}
