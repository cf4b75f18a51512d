import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { openApiDocument, routes } from '@runtrail/protocol';
import { serve } from './route-table.js';

/**
 * Swagger UI's files, copied from swagger-ui-dist by the build (scripts/build.mjs)
 * into the server's dist, so the page needs no CDN and the server package no
 * runtime dependency. The same path works from src/http and dist/http.
 */
export const API_DOCS_ASSETS = fileURLToPath(new URL('../../dist/api-docs', import.meta.url));

const page = (specUrl: string, assets: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>runtrail API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assets}/swagger-ui.css">
</head>
<body>
<div id="api"></div>
<script src="${assets}/swagger-ui-bundle.js"></script>
<script src="${assets}/init.js"></script>
</body>
</html>
`;

/** The OpenAPI document at routes.openapi and a page that renders it at routes.apiDocs. */
export async function registerApiDocs(http: FastifyInstance, version: string): Promise<void> {
  // Built on the first request, then kept: building it (every route's schemas as JSON Schema) took
  // about 70 ms of every start, and most servers are never asked for it.
  let document: string | undefined;
  serve(http, 'openapi', async ({ reply }) => {
    document ??= JSON.stringify(openApiDocument({ version }));
    return reply.type('application/json; charset=utf-8').send(document);
  });

  const assets = `${routes.apiDocs.path}/assets`;
  serve(http, 'apiDocs', async ({ reply }) => {
    if (!existsSync(API_DOCS_ASSETS)) {
      return reply
        .status(503)
        .type('text/plain; charset=utf-8')
        .send(`The API docs page is not built (looked in ${API_DOCS_ASSETS}); run \`npm run build\`. The document is at ${routes.openapi.path}.`);
    }
    return reply.type('text/html; charset=utf-8').send(page(routes.openapi.path, assets));
  });
  // A strict Content-Security-Policy would refuse an inline script: the initialiser is a file too.
  http.get(`${assets}/init.js`, async (_request, reply) =>
    reply
      .type('text/javascript; charset=utf-8')
      .send(`window.ui = SwaggerUIBundle({ url: ${JSON.stringify(routes.openapi.path)}, dom_id: '#api', deepLinking: true });\n`),
  );
  if (existsSync(API_DOCS_ASSETS)) {
    await http.register(fastifyStatic, { root: API_DOCS_ASSETS, prefix: `${assets}/`, decorateReply: false });
  }
}
