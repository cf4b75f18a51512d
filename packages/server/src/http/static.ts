import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { API_PREFIX, DASHBOARD_RUN_PATH, matchDashboardRunPath } from '@runtrail/protocol';

/**
 * The dashboard the server serves when `webDir` is not configured: the
 * build of the `@runtrail/web` package, found by package resolution (so it
 * works wherever npm put it), or null when that package is not installed.
 */
export function shippedWebDir(): string | null {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@runtrail/web/package.json')), 'dist');
  } catch (err) {
    // Not installed: an API-only server. registerStatic says so at start-up.
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return null;
    throw err;
  }
}

/**
 * Where to send a dashboard link whose percent-encoding is broken
 * (`/runs/%E0%A4%A`, a link cut short or mangled by a chat app), or null
 * when `url` is not such a link. The router cannot decode such a path and
 * answers 400 before any route or hook; a reader who pasted it got a page of
 * raw JSON. Each escape that does not decode is written as the text it is
 * (`%` as `%25`), so the path the browser is sent to decodes to what was
 * typed, and the dashboard says there is no such run. API paths (and every
 * other path that is no dashboard page) keep their JSON 400.
 */
export function repairedDashboardUrl(url: string): string | null {
  const at = url.indexOf('?');
  const path = at === -1 ? url : url.slice(0, at);
  const repaired = path.replace(/(?:%[0-9a-fA-F]{2})+|%/g, (escapes) => (decodes(escapes) ? escapes : escapes.replaceAll('%', '%25')));
  if (repaired === path || matchDashboardRunPath(repaired) === null) return null;
  return repaired + (at === -1 ? '' : url.slice(at));
}

function decodes(escapes: string): boolean {
  try {
    decodeURIComponent(escapes);
    return true;
  } catch (err) {
    // Not UTF-8 (or a lone `%`): the one thing this asks, so the URIError is the answer, not a failure.
    if (err instanceof URIError) return false;
    throw err;
  }
}

/** Client-side routes of the dashboard: a reload or a shared link must get the app, not a 404. */
const SPA_ROUTES = [DASHBOARD_RUN_PATH];

/**
 * Serve the dashboard at `/`. Unknown files and every unknown API path still
 * get the JSON 404 of the error handler: the SPA fallback is limited to the
 * dashboard's own routes so that a mistyped API URL fails loudly (field note 2).
 */
export async function registerStatic(app: FastifyInstance, webDir: string | undefined): Promise<void> {
  const root = webDir ?? shippedWebDir();
  if (root === null || !existsSync(join(root, 'index.html'))) {
    const where = root === null ? 'the @runtrail/web package is not installed; set webDir' : `looked in ${root}`;
    app.log.warn({ webDir: root }, `dashboard not found (${where}); \`npm run build\` makes it (the API works without it)`);
    app.get('/', async (_request, reply) =>
      reply
        .status(503)
        .type('text/plain; charset=utf-8')
        .send(`The runtrail dashboard is not built (${where}). Run \`npm run build\`; the API is at ${API_PREFIX}.`),
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
