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
  /**
   * The content's length in bytes, for a stream whose length you know (text,
   * bytes and files are measured): sent as Content-Length, so a server
   * refuses an upload over its limits before it is sent rather than after.
   */
  size?: number;
}

/** Content opened for sending, and its length when that is known before reading it. */
export interface OpenedSource {
  content: AsyncIterable<Uint8Array> | Uint8Array;
  size: number | null;
}

/** The artifact-storing half of a producer transport. */
export interface ArtifactTransport {
  putArtifact(runId: string, name: string, source: OpenedSource, options: ArtifactOptions): Promise<Artifact>;
}

/** A source that can be read again from the start (so an upload of it can be retried). */
export function isRepeatable(source: ArtifactSource): boolean {
  return typeof source === 'string' || source instanceof Uint8Array || source instanceof ArrayBuffer || isFileSource(source);
}

function isFileSource(source: ArtifactSource): source is { path: string } | URL {
  return source instanceof URL || (typeof source === 'object' && source !== null && 'path' in source && typeof source.path === 'string');
}

/**
 * Open a source as bytes or a byte stream, with its length when known
 * (`size` is the caller's word for a stream's); files are read lazily with
 * node:fs, exactly the bytes they had when opened.
 */
export async function openSource(source: ArtifactSource, size?: number): Promise<OpenedSource> {
  if (typeof source === 'string') return sized(new TextEncoder().encode(source));
  if (source instanceof Uint8Array) return sized(source);
  if (source instanceof ArrayBuffer) return sized(new Uint8Array(source));
  if (isFileSource(source)) {
    if (source instanceof URL && source.protocol !== 'file:') throw new TypeError(`artifact source ${source.href} is not a file: URL`);
    // Only here, so the SDK still loads in a browser.
    const { open } = await import('node:fs/promises');
    const file = await open(source instanceof URL ? source : source.path, 'r');
    let length: number;
    try {
      length = (await file.stat()).size;
    } catch (err) {
      await file.close();
      throw err;
    }
    if (length === 0) {
      await file.close();
      return sized(new Uint8Array(0));
    }
    // Its size when opened, and no more: a file still being written cannot make the upload longer than it said.
    return { content: file.createReadStream({ end: length - 1 }) as AsyncIterable<Uint8Array>, size: length };
  }
  if (Symbol.asyncIterator in source) return { content: source, size: size ?? null };
  throw new TypeError('artifact content must be a string, bytes, a stream, { path } or a file: URL');
}

function sized(bytes: Uint8Array): OpenedSource {
  return { content: bytes, size: bytes.byteLength };
}

/** The request headers of an upload of `size` bytes (null: not known, sent chunked). */
export function uploadHeaders(options: ArtifactOptions, size: number | null): Record<string, string> {
  const headers: Record<string, string> = {};
  if (size !== null) headers['content-length'] = String(size);
  if (options.contentType) headers['content-type'] = options.contentType;
  if (options.metadata !== undefined && options.metadata !== null) {
    // Header values are Latin-1 on the wire: escape everything else.
    headers[ARTIFACT_METADATA_HEADER] = JSON.stringify(options.metadata).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  return headers;
}

/**
 * A byte stream as a web ReadableStream (what fetch sends). `onSourceError`
 * hears a failure to read `body` itself (a file that cannot be read, a
 * stream that broke): fetch reports it as its own network failure.
 */
export function toReadableStream(body: AsyncIterable<Uint8Array>, onSourceError?: (err: unknown) => void): ReadableStream<Uint8Array> {
  if (body instanceof ReadableStream && !onSourceError) return body as ReadableStream<Uint8Array>;
  const it = body instanceof ReadableStream ? readerIterator((body as ReadableStream<Uint8Array>).getReader()) : body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await it.next();
      } catch (err) {
        onSourceError?.(err);
        throw err;
      }
      if (next.done) controller.close();
      else controller.enqueue(next.value instanceof Uint8Array ? next.value : new Uint8Array(next.value));
    },
    async cancel(reason) {
      await it.return?.(reason);
    },
  });
}

function readerIterator(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncIterator<Uint8Array> {
  return {
    next: async () => {
      const { done, value } = await reader.read();
      return done ? { done: true, value: undefined } : { done: false, value };
    },
    return: async (reason?: unknown) => {
      await reader.cancel(reason);
      return { done: true, value: undefined };
    },
  };
}

/**
 * Send an upload whose body is `content`: a failure to read the content is
 * thrown as what it is, naming `what`, rather than as the server being
 * unreachable, which would also have an upload of a file retried for
 * minutes over a read that can only fail again (a folder given as a file).
 */
export async function sendContent<T>(
  content: AsyncIterable<Uint8Array> | Uint8Array,
  what: string,
  send: (body: BodyInit) => Promise<T>,
): Promise<T> {
  if (content instanceof Uint8Array) return send(content as BodyInit);
  let sourceError: { err: unknown } | null = null;
  const body = toReadableStream(content, (err) => (sourceError ??= { err }));
  try {
    return await send(body as BodyInit);
  } catch (err) {
    if (sourceError === null) throw err;
    const why = (sourceError as { err: unknown }).err;
    // The cause is fetch's failure, whose own cause is the read error.
    throw new Error(`the content of ${what} could not be read: ${why instanceof Error ? why.message : String(why)}`, { cause: err });
  }
}
