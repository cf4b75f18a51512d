import { ARTIFACT_METADATA_HEADER, MAX_ARTIFACT_METADATA_BYTES } from './artifacts.js';

/**
 * A request header a route reads, declared on its RouteDef: the OpenAPI
 * document lists it as the operation's header parameter (so a client made
 * from the document sends it, and the API docs page has a field for it),
 * docs/api.md lists it under the route's Headers, and the server's CORS
 * preflight allows it. Every such header is optional: a request without it
 * is answered as the route's summary says.
 *
 * Authorization, Content-Type and x-runtrail-client are not declared here:
 * they are every route's (the bearer scheme, the request body's media type
 * and the forgery check; openapi.ts describes each).
 */
export interface HeaderDef {
  /** Lower case: the key Node gives it in `request.headers` (HTTP compares header names case-insensitively). */
  name: string;
  /** What sending it does on this route. */
  description: string;
  /** A value a client might send (the API docs page fills it in). */
  example: string;
}

/** The same key again answers the run the first request made, not a second one (createRun, retryRun). */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
/** The last event id (seq) an event stream's reader saw: the stream resumes after it. */
export const LAST_EVENT_ID_HEADER = 'last-event-id';
/** One `bytes=` range of a body served whole otherwise (206). */
export const RANGE_HEADER = 'range';
/** The ETag a resumed download has: Range applies only while the content is still that. */
export const IF_RANGE_HEADER = 'if-range';
/** The ETag a client holds: 304 without the content while it is still that. */
export const IF_NONE_MATCH_HEADER = 'if-none-match';

/** Most characters an Idempotency-Key may have (the server refuses a longer one naming the header). */
export const MAX_IDEMPOTENCY_KEY_CHARS = 200;

/** `answer`: what a repeated key gets back; `conflict`: when a key is refused; `example`: a key one might choose. */
export function idempotencyKeyHeader(answer: string, conflict: string, example: string): HeaderDef {
  return {
    name: IDEMPOTENCY_KEY_HEADER,
    description:
      `1 to ${MAX_IDEMPOTENCY_KEY_CHARS} characters of the caller's choosing. Sent again with the same key (a retry after a lost answer, a retried script), ` +
      `the request answers 200 with ${answer} instead of making another; a key ${conflict} is 409 idempotency_conflict. Without it, each request makes one more.`,
    example,
  };
}

export const lastEventIdHeader: HeaderDef = {
  name: LAST_EVENT_ID_HEADER,
  description:
    'The seq of the last event the reader has (what a browser EventSource sends when it reconnects): the stream starts after it. Decimal digits only; it wins over ?after=.',
  example: '42',
};

export function rangeHeader(what: string): HeaderDef {
  return {
    name: RANGE_HEADER,
    description: `One byte range of ${what}: bytes=START-END, bytes=START- or bytes=-N (the last N bytes). 206 with Content-Range; 416 range_not_satisfiable for a range past its end. Any other form: all of it, 200.`,
    example: 'bytes=0-1023',
  };
}

export const ifRangeHeader: HeaderDef = {
  name: IF_RANGE_HEADER,
  description:
    "The artifact's ETag as the client got it with the part it has: Range applies only while the content is still that; content replaced since comes back whole, 200, never a piece to join to another.",
  example: '"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"',
};

export const ifNoneMatchHeader: HeaderDef = {
  name: IF_NONE_MATCH_HEADER,
  description: 'ETags the client has a copy of (or *): 304 Not Modified, with no content, when the artifact is still one of them.',
  example: '"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"',
};

export const artifactMetadataHeader: HeaderDef = {
  name: ARTIFACT_METADATA_HEADER,
  description:
    `The artifact's metadata, kept with its record: JSON of at most ${MAX_ARTIFACT_METADATA_BYTES / 1024} KiB, non-ASCII characters written as \\uXXXX escapes (a header's bytes are not read as UTF-8); ` +
    'anything else is 400 invalid_request naming the header. Without it: null.',
  example: '{"rows": 1200, "split": "test"}',
};
