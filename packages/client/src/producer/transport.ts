import type {
  Artifact,
  AppendEventsBody,
  AppendEventsResponse,
  EventInput,
  FinishRunBody,
  HeartbeatResponse,
  Owner,
  Run,
} from '@runtrail/protocol';
import { JsonBody, type HttpApi } from '../http-api.js';
import { sendContent, uploadHeaders, type ArtifactOptions, type ArtifactTransport, type OpenedSource } from '../artifacts/source.js';

/**
 * An event as a RunHandle recorded it, its data already JSON: serialized
 * when the event was made, so a caller changing the object it passed
 * afterwards does not change the event, and serialized once (the handle
 * needs the text anyway, to check the event's size).
 */
export interface RecordedEvent {
  type: string;
  ts: number;
  id: string;
  dataJson: string;
}

/** A recorded event as the API's EventInput (for a transport that hands objects on). */
export function eventInputOf({ type, ts, id, dataJson }: RecordedEvent): EventInput {
  return { type, ts, id, data: JSON.parse(dataJson) as unknown };
}

/** The body of an append of these events, built around their data texts. */
export function appendBodyOf(events: RecordedEvent[], owner: Owner | null): JsonBody<AppendEventsBody> {
  const texts = events.map((e) => `{"type":${JSON.stringify(e.type)},"data":${e.dataJson},"ts":${e.ts},"id":${JSON.stringify(e.id)}}`);
  return new JsonBody(`{"events":[${texts.join(',')}]${owner ? `,"owner":${JSON.stringify(owner)}` : ''}}`);
}

/**
 * How a RunHandle reaches the log. Over HTTP for external producers; the
 * server's executor supplies an in-process one, so handlers and external
 * producers share one API and one set of rules.
 */
export interface ProducerTransport extends ArtifactTransport {
  /** `owner` null: an attached handle's append, naming no owner. */
  append(runId: string, events: RecordedEvent[], owner: Owner | null): Promise<AppendEventsResponse>;
  finish(runId: string, body: FinishRunBody): Promise<Run>;
  /**
   * Renew the lease. `waitMs`: the server may hold the answer that long,
   * answering at once when a cancel is requested or the run ends; a
   * transport or server that does not hold answers at once.
   */
  heartbeat(runId: string, owner: Owner, waitMs?: number, signal?: AbortSignal): Promise<HeartbeatResponse>;
}

export class HttpProducerTransport implements ProducerTransport {
  constructor(private readonly api: HttpApi) {}

  append(runId: string, events: RecordedEvent[], owner: Owner | null): Promise<AppendEventsResponse> {
    return this.api.request('appendEvents', { params: { id: runId }, body: appendBodyOf(events, owner) });
  }

  finish(runId: string, body: FinishRunBody): Promise<Run> {
    return this.api.request('finishRun', { params: { id: runId }, body });
  }

  heartbeat(runId: string, owner: Owner, waitMs = 0, signal?: AbortSignal): Promise<HeartbeatResponse> {
    if (waitMs <= 0) return this.api.request('heartbeat', { params: { id: runId }, body: { owner } });
    // Held for up to waitMs on purpose: the usual timeout starts after it. `signal`: the handle closed.
    return this.api.request('heartbeat', {
      params: { id: runId },
      query: { waitMs },
      body: { owner },
      timeoutMs: waitMs + this.api.timeoutMs,
      ...(signal ? { signal } : {}),
    });
  }

  putArtifact(runId: string, name: string, source: OpenedSource, options: ArtifactOptions): Promise<Artifact> {
    return putArtifact(this.api, runId, name, source, options);
  }
}

/** PUT an artifact's content, streamed, with no timeout (a large one takes as long as it takes). */
export async function putArtifact(
  api: HttpApi,
  runId: string,
  name: string,
  { content, size }: OpenedSource,
  options: ArtifactOptions,
): Promise<Artifact> {
  const response = await sendContent(content, `artifact ${name} of run ${runId}`, (raw) =>
    api.send('putArtifact', {
      params: { id: runId, name },
      ...(options.replace ? { query: { replace: 'true' } } : {}),
      headers: uploadHeaders(options, size),
      raw,
      timeoutMs: null,
    }),
  );
  return (await response.json()) as Artifact;
}
