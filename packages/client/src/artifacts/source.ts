import { ARTIFACT_METADATA_HEADER, type Artifact } from '@runtrail/protocol';

/**
 * What an artifact's content can be given as: the bytes or text themselves,
 * a stream (web ReadableStream or any async iterable of bytes, such as a
 * Node Readable), or a file, as `{ path }` or a `file:` URL. A plain string
 * is always content, never a path: a string that happens to name a file
 * must not silently upload that file.
 */
export type ArtifactSource =
  | string
  | Uint8Array
  | ArrayBuffer
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>
  | { path: string }
  | URL;

export interface ArtifactOptions {
  /** Its media type; when absent the server sniffs it from the content and name. */
  contentType?: string;
  /** Free JSON metadata stored with it. */
  metadata?: unknown;
  /** Replace different content stored under the same name (default: 409 artifact_conflict). */
  replace?: boolean;
}

/** The artifact-storing half of a producer transport. */
export interface ArtifactTransport {
  putArtifact(runId: string, name: string, body: AsyncIterable<Uint8Array> | Uint8Array, options: ArtifactOptions): Promise<Artifact>;
}

/** A source that can be read again from the start (so an upload of it can be retried). */
export function isRepeatable(source: ArtifactSource): boolean {
  return typeof source === 'string' || source instanceof Uint8Array || source instanceof ArrayBuffer || isFileSource(source);
}

function isFileSource(source: ArtifactSource): source is { path: string } | URL {
  return source instanceof URL || (typeof source === 'object' && source !== null && 'path' in source && typeof source.path === 'string');
}

/** Open a source as bytes or a byte stream; files are read lazily with node:fs. */
export async function openSource(source: ArtifactSource): Promise<AsyncIterable<Uint8Array> | Uint8Array> {
  if (typeof source === 'string') return new TextEncoder().encode(source);
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (isFileSource(source)) {
    if (source instanceof URL && source.protocol !== 'file:') throw new TypeError(`artifact source ${source.href} is not a file: URL`);
    // Only here, so the SDK still loads in a browser.
    const { createReadStream } = await import('node:fs');
    const stream = createReadStream(source instanceof URL ? source : source.path);
    await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
    return stream as AsyncIterable<Uint8Array>;
  }
  if (Symbol.asyncIterator in source) return source;
  throw new TypeError('artifact content must be a string, bytes, a stream, { path } or a file: URL');
}

/** The request headers of an upload. */
export function uploadHeaders(options: ArtifactOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  if (options.contentType) headers['content-type'] = options.contentType;
  if (options.metadata !== undefined && options.metadata !== null) {
    // Header values are Latin-1 on the wire: escape everything else.
    headers[ARTIFACT_METADATA_HEADER] = JSON.stringify(options.metadata).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  return headers;
}

/** A byte stream as a web ReadableStream (what fetch sends). */
export function toReadableStream(body: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  if (body instanceof ReadableStream) return body as ReadableStream<Uint8Array>;
  const it = body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value instanceof Uint8Array ? value : new Uint8Array(value));
    },
    async cancel(reason) {
      await it.return?.(reason);
    },
  });
}
