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
