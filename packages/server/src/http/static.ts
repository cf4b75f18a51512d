import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { API_PREFIX } from '@runtrail/protocol';

/**
 * The built dashboard of the web package. The same relative path works from
 * src/http (tests on sources) and dist/http (the built server): both sit two
 * levels below packages/server.
 */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../../web/dist', import.meta.url));

/** Client-side routes of the dashboard: a reload or a shared link must get the app, not a 404. */
const SPA_ROUTES = ['/runs/:id'];

/**
 * Serve the dashboard at `/`. Unknown files and every unknown API path still
 * get the JSON 404 of the error handler: the SPA fallback is limited to the
 * dashboard's own routes so that a mistyped API URL fails loudly (field note 2).
 */
export async function registerStatic(app: FastifyInstance, webDir: string | undefined): Promise<void> {
  const root = webDir ?? DEFAULT_WEB_DIR;
  if (!existsSync(join(root, 'index.html'))) {
    app.log.warn({ webDir: root }, 'dashboard not built; `npm run build` makes it (the API works without it)');
    app.get('/', async (_request, reply) =>
      reply
        .status(503)
        .type('text/plain; charset=utf-8')
        .send(`The runtrail dashboard is not built (looked in ${root}). Run \`npm run build\`; the API is at ${API_PREFIX}.`),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    index: ['index.html'],
    // Vite puts a content hash in every asset name, so they never change;
    // index.html does, and must be revalidated so a new build is picked up.
    cacheControl: false,
    setHeaders: (reply, path) => {
      reply.header(
        'cache-control',
        path.endsWith('index.html') ? 'no-cache' : 'public, max-age=31536000, immutable',
      );
    },
  });
  for (const url of SPA_ROUTES) {
    app.get(url, async (_request, reply) => reply.sendFile('index.html'));
  }
}
