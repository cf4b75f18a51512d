import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ARTIFACT_METADATA_HEADER,
  EXPORT_ESTIMATED_BYTES_HEADER,
  EXPORT_RUNS_HEADER,
  EXPORT_STATUS_HEADER,
  IF_NONE_MATCH_HEADER,
  IF_RANGE_HEADER,
  IMPORTED_RUNS_HEADER,
  JsonValue,
  MAX_ARTIFACT_METADATA_BYTES,
  RANGE_HEADER,
  RuntrailError,
  parseOrThrow,
  type Artifact,
} from '@runtrail/protocol';
import { serve } from '../http/route-table.js';
import { type UnreadAnswerShare, atLeastRate } from '../security/index.js';
import type { ArtifactService } from './artifact-service.js';
import { isSafeInline } from './content-type.js';

/** After answering a refused upload, how much more of its body is read (and dropped) before the connection is closed. */
const DRAIN_BYTES = 16 * 1024 * 1024;

/**
 * The artifact routes. Uploads are raw bodies of any type, streamed: they
 * live in their own plugin scope, where no body parser runs (the JSON one
 * would buffer them), and the routes read the request stream themselves.
 */
export async function registerArtifactRoutes(
  app: FastifyInstance,
  artifacts: ArtifactService,
  limits: {
    /** The slowest average an upload or import may come at after its first graceMs (minUploadBytesPerSecond, requestBodyTimeoutMs). */
    minBytesPerSecond: number;
    graceMs: number;
    /** An export's share of maxUnreadAnswerBytesPerIp (limitUnreadAnswers). */
    unreadAnswer: UnreadAnswerShare;
  },
): Promise<void> {
  const rate = { minBytesPerSecond: limits.minBytesPerSecond, graceMs: limits.graceMs };
  // Not the stream itself: leaving a for-await destroys what it iterates, and a
  // destroyed request leaves its keep-alive connection out of the server's idle
  // list (close() then waits for it); a refused upload is drained below instead.
  // One too slow is closed after its answer: its rest would come as slowly.
  const bodyOf = (request: FastifyRequest, reply: FastifyReply) =>
    atLeastRate(request.raw.iterator({ destroyOnReturn: false }), { ...rate, onTooSlow: () => void reply.header('connection', 'close') });
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_request, _payload, done) => done(null));

    serve(raw, 'putArtifact', async ({ params, query, request, reply }) => {
      const runId = params.id!;
      const name = params.name!;
      try {
        const maxBytes = await artifacts.admit(runId, name, declaredLength(request));
        const { artifact, outcome } = await artifacts.put(
          runId,
          name,
          bodyOf(request, reply),
          {
            contentType: header(request, 'content-type'),
            metadata: metadataOf(request),
            replace: query.replace === 'true',
          },
          maxBytes,
        );
        void reply.status(outcome === 'unchanged' ? 200 : 201);
        return artifact;
      } catch (err) {
        discardRest(request, reply);
        throw err;
      }
    });

    serve(raw, 'importRun', async ({ request, reply }) => {
      try {
        const { runs, imported } = await artifacts.importArchive(bodyOf(request, reply));
        void reply.status(imported ? 201 : 200).header(IMPORTED_RUNS_HEADER, runs.length);
        return runs[0];
      } catch (err) {
        discardRest(request, reply);
        throw err;
      }
    });
  });

  serve(app, 'exportRun', async ({ params, query, request, reply }) => {
    const family = query.family === 'true';
    const { runs, archive, estimatedBytes } = await artifacts.exportRun(params.id!, { family, unread: limits.unreadAnswer(request, reply) });
    const run = runs[0]!;
    if (family) void reply.header(EXPORT_RUNS_HEADER, runs.length);
    void reply
      .header('content-type', 'application/x-tar')
      .header('x-content-type-options', 'nosniff')
      .header(EXPORT_STATUS_HEADER, run.status)
      // Streamed as it is read, so no Content-Length; this lets a client show a percentage (runtrail export does).
      .header(EXPORT_ESTIMATED_BYTES_HEADER, estimatedBytes)
      .header('content-disposition', contentDisposition('attachment', `runtrail-${run.id}${family ? '-family' : ''}.tar`));
    return reply.send(archive);
  });

  serve(app, 'listArtifacts', async ({ params }) => ({ artifacts: await artifacts.list(params.id!) }));

  serve(app, 'getArtifact', async ({ params, request, reply }) => {
    const artifact = await artifacts.get(params.id!, params.name!);
    return sendArtifact(artifacts, artifact, request, reply);
  });
}

async function sendArtifact(artifacts: ArtifactService, a: Artifact, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const etag = `"${a.sha256}"`;
  // The client's copy is this content: no need to have it here.
  if (matchesEtag(header(request, IF_NONE_MATCH_HEADER), etag)) return reply.status(304).header('etag', etag).header('cache-control', 'no-cache').send();
  // A resumed download names what it has (If-Range): if that is not this content (replaced since), the whole of it comes back, never a piece to join to another.
  const ifRange = header(request, IF_RANGE_HEADER);
  const range = ifRange === undefined || ifRange.trim() === etag ? parseRange(header(request, RANGE_HEADER), a.size) : null;
  if (range === 'unsatisfiable') {
    void reply.header('content-range', `bytes */${a.size}`);
    throw new RuntrailError('range_not_satisfiable', `the artifact has ${a.size} bytes; ask for a range inside bytes=0-${Math.max(0, a.size - 1)}`, {
      size: a.size,
    });
  }
  const partial = range !== null && a.size > 0 ? range : null;
  // Opened before any of the artifact's headers are set: content missing on this node is a 503 of the API,
  // which must not go out dressed as the artifact (its etag, its name, its sandbox).
  const body = a.size === 0 ? '' : await artifacts.open(a, partial ?? undefined);
  void reply
    .header('content-type', a.contentType)
    .header('etag', etag)
    .header('accept-ranges', 'bytes')
    .header('cache-control', 'no-cache')
    .header('x-content-type-options', 'nosniff')
    // Opened directly, an artifact is a document of this origin: give it no powers at all.
    .header('content-security-policy', "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox")
    .header('content-disposition', contentDisposition(isSafeInline(a.contentType) ? 'inline' : 'attachment', a.name));
  if (partial) {
    void reply
      .status(206)
      .header('content-range', `bytes ${partial.start}-${partial.end}/${a.size}`)
      .header('content-length', partial.end - partial.start + 1);
  } else {
    void reply.header('content-length', a.size);
  }
  return reply.send(body);
}

/** One `bytes=` range (the only kind a browser's media player or a resumed download asks for); others get the whole body. */
export function parseRange(value: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!value) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}

/** RFC 6266: an ASCII fallback name plus the exact UTF-8 one. */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  if (Array.isArray(value)) throw new RuntrailError('invalid_request', `send one ${name} header`);
  return value === undefined || value === '' ? undefined : value;
}

function declaredLength(request: FastifyRequest): number | undefined {
  const value = header(request, 'content-length');
  return value === undefined ? undefined : Number(value);
}

function metadataOf(request: FastifyRequest): unknown {
  const text = header(request, ARTIFACT_METADATA_HEADER);
  if (text === undefined) return null;
  if (Buffer.byteLength(text) > MAX_ARTIFACT_METADATA_BYTES) {
    throw new RuntrailError('invalid_request', `${ARTIFACT_METADATA_HEADER} is larger than ${MAX_ARTIFACT_METADATA_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RuntrailError('invalid_request', `${ARTIFACT_METADATA_HEADER} is not JSON: ${(err as Error).message}`);
  }
  return parseOrThrow(JsonValue, value, ARTIFACT_METADATA_HEADER);
}

/**
 * What is left of a refused upload's body is read and dropped while the
 * answer goes out, so the client, still sending, gets to read it instead of
 * a reset connection (a client reads the answer as it sends; the answer
 * must be on the wire first). Once the answer is sent and DRAIN_BYTES more
 * arrived, the connection is closed rather than read an unbounded body.
 */
function discardRest(request: FastifyRequest, reply: FastifyReply): void {
  const body = request.raw;
  if (body.readableEnded || body.destroyed) return;
  let read = 0;
  body.on('data', (chunk: Buffer) => {
    read += chunk.length;
    if (read > DRAIN_BYTES && reply.raw.writableFinished) body.socket.destroy();
  });
  body.on('error', (err) => {
    // The client went away mid-body: there is no one left to answer.
    request.log.debug({ err }, 'upload dropped while draining');
  });
}
