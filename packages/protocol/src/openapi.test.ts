import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { openApiDocument, openApiPath } from './openapi.js';
import { routeResponses } from './responses.js';
import { routes, type RouteName } from './routes.js';

interface Operation {
  operationId: string;
  parameters?: Array<{ name: string; in: string }>;
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document (checked by a real validator, JSON Schema of every part included)', async () => {
    const doc = openApiDocument({ version: '9.9.9' });
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(JSON.parse(JSON.stringify(doc)));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('has every route of the route table, in OpenAPI path form, with its params, body, success response and error response', () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, Operation>> };
    const operations = Object.values(doc.paths).flatMap((methods) => Object.values(methods));
    expect(operations).toHaveLength(Object.keys(routes).length);
    for (const name of Object.keys(routes) as RouteName[]) {
      const route = routes[name];
      const path = openApiPath(route.path);
      expect(path).not.toContain(':');
      const op = doc.paths[path]?.[route.method.toLowerCase()];
      expect(op, `${route.method} ${path}`).toBeDefined();
      expect(op!.operationId).toBe(name);
      for (const [, param] of route.path.matchAll(/:([A-Za-z]+)/g)) {
        expect(op!.parameters?.some((p) => p.in === 'path' && p.name === param), `${name}: path param ${param}`).toBe(true);
      }
      expect(Boolean(op!.requestBody), `${name}: request body`).toBe('body' in route || 'rawBody' in route);
      const success = op!.responses[String(routeResponses[name].status)];
      expect(success, `${name}: ${routeResponses[name].status} response`).toBeDefined();
      if (routeResponses[name].schema) expect(success!.content?.['application/json']?.schema).toBeDefined();
      expect(op!.responses.default?.content?.['application/json']?.schema).toEqual({ $ref: '#/components/schemas/Error' });
    }
  });

  it('says what a client made from it must send to be let in: a bearer token where auth is on, and the client header on a write that sends no JSON', () => {
    const doc = openApiDocument() as {
      security: unknown;
      components: { securitySchemes: Record<string, unknown> };
      paths: Record<string, Record<string, Operation & { parameters?: Array<{ name: string; in: string; required: boolean }> }>>;
    };
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{}, { bearer: [] }]);
    for (const name of Object.keys(routes) as RouteName[]) {
      const route = routes[name];
      const op = doc.paths[openApiPath(route.path)]![route.method.toLowerCase()]!;
      const header = op.parameters?.find((p) => p.in === 'header' && p.name === 'x-runtrail-client');
      // A JSON body's content-type lets it in; a write without one (a DELETE, a retry, an upload, an import) is refused without the header.
      if (route.method !== 'GET' && !('body' in route)) expect(header, `${name} names the client header`).toMatchObject({ required: true });
      else expect(header, `${name} needs no client header`).toBeUndefined();
    }
  });

  it('lists the request headers a route reads as its optional header parameters, so a client made from it sends them (a retried create its Idempotency-Key)', () => {
    const doc = openApiDocument() as {
      paths: Record<string, Record<string, Operation & { parameters?: Array<{ name: string; in: string; required: boolean; description?: string; schema?: unknown; example?: unknown }> }>>;
    };
    const headersOf = (name: RouteName) => {
      const route = routes[name];
      const op = doc.paths[openApiPath(route.path)]![route.method.toLowerCase()]!;
      return (op.parameters ?? []).filter((p) => p.in === 'header' && p.name !== 'x-runtrail-client');
    };
    const expected: Partial<Record<RouteName, string[]>> = {
      createRun: ['idempotency-key'],
      retryRun: ['idempotency-key'],
      streamRun: ['last-event-id'],
      putArtifact: ['x-runtrail-metadata'],
      getArtifact: ['range', 'if-range', 'if-none-match'],
      runLog: ['range'],
    };
    for (const name of Object.keys(routes) as RouteName[]) {
      const headers = headersOf(name);
      expect(headers.map((h) => h.name), name).toEqual(expected[name] ?? []);
      for (const header of headers) {
        expect(header, `${name} ${header.name}`).toMatchObject({ in: 'header', required: false, schema: { type: 'string' } });
        expect(header.description?.length ?? 0, `${name} ${header.name}: description`).toBeGreaterThan(40);
        expect(typeof header.example === 'string' && header.example !== '', `${name} ${header.name}: example`).toBe(true);
      }
    }
    // Each route's own words: the log has no If-Range, a retry's key is not a create's.
    expect(headersOf('retryRun')[0]!.example).not.toBe(headersOf('createRun')[0]!.example);
    expect(headersOf('retryRun')[0]!.description).toContain('a retry of this run');
  });

  it('describes the responses and stream messages by shared components', () => {
    const doc = openApiDocument() as { components: { schemas: Record<string, { properties?: Record<string, unknown> }> } };
    const { schemas } = doc.components;
    for (const name of ['Run', 'RunWithObservers', 'Snapshot', 'RunEvent', 'Error', 'ServerMessage', 'ClientMessage']) {
      expect(schemas[name], name).toBeDefined();
    }
    expect(Object.keys(schemas.Run!.properties!)).toEqual(expect.arrayContaining(['id', 'status', 'seq', 'snapshot']));
    // Every $ref points at a component that exists.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
    for (const ref of refs) expect(schemas[ref.replace('#/components/schemas/', '')], ref).toBeDefined();
  });
});
