import { describe, expect, it } from 'vitest';
import { openApiDocument } from '@runtrail/protocol';
import { SERVER_VERSION } from '../app.js';
import { testScope } from '../stream/stream.test-kit.js';

const { server: startTestServer } = testScope();

describe('the API description a server serves', () => {
  it('GET /api/v1/openapi.json answers the generated OpenAPI 3.1 document with the server version', async () => {
    const server = await startTestServer();
    const response = await fetch(`${server.url}/api/v1/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/json');
    const doc = (await response.json()) as { openapi: string; info: { version: string } };
    expect(doc).toEqual(openApiDocument({ version: SERVER_VERSION }));
  });

  it('every write sent as the served document describes it passes the forgery check (a client generated from it, the docs page\'s "Try it out")', async () => {
    const server = await startTestServer();
    interface Parameter { name: string; in: string; required: boolean; example?: string }
    interface Op { operationId: string; parameters?: Parameter[]; requestBody?: { content: Record<string, unknown> } }
    const doc = (await (await fetch(`${server.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, Op>> };
    const refused: string[] = [];
    let writes = 0;
    for (const [template, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        if (method === 'get') continue;
        writes++;
        const headers: Record<string, string> = {};
        for (const p of op.parameters ?? []) if (p.in === 'header' && p.required) headers[p.name] = p.example ?? 'x';
        const media = Object.keys(op.requestBody?.content ?? {})[0];
        let body: string | undefined;
        if (media) {
          // What the document says the body is: JSON, or raw content of its type.
          headers['content-type'] = media === '*/*' ? 'application/octet-stream' : media;
          body = media === 'application/json' ? '{}' : 'raw content';
        }
        const path = template.replace(/\{[^}]+\}/g, 'no-such-thing');
        const response = await fetch(server.url + path, { method: method.toUpperCase(), headers, ...(body === undefined ? {} : { body }) });
        const answer = await response.text();
        // Any other answer (a 404 for the made-up id, a 400 for the empty body) is the route's own.
        if (response.status === 403) refused.push(`${method.toUpperCase()} ${template} (${op.operationId}): ${answer}`);
      }
    }
    expect(writes).toBeGreaterThanOrEqual(10);
    expect(refused).toEqual([]);
  });

  it('GET /api/docs is a page whose scripts and styles all come from this server (no CDN)', async () => {
    const server = await startTestServer();
    const response = await fetch(`${server.url}/api/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    const html = await response.text();
    // A data: URL (the empty icon) is fetched from nowhere.
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((url) => !url.startsWith('data:'));
    expect(assets.length).toBeGreaterThanOrEqual(3);
    for (const asset of assets) {
      expect(asset, 'a local path').toMatch(/^\/api\/docs\//);
      const fetched = await fetch(server.url + asset);
      expect(fetched.status, asset).toBe(200);
      expect((await fetched.text()).length, asset).toBeGreaterThan(10);
    }
    const init = await (await fetch(`${server.url}/api/docs/assets/init.js`)).text();
    expect(init).toContain('"/api/v1/openapi.json"');
  });
});
