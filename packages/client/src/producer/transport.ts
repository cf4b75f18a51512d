import type {
  Artifact,
  AppendEventsResponse,
  EventInput,
  FinishRunBody,
  HeartbeatResponse,
  Owner,
  Run,
} from '@runtrail/protocol';
import type { HttpApi } from '../http-api.js';
import { toReadableStream, uploadHeaders, type ArtifactOptions, type ArtifactTransport, type OpenedSource } from '../artifacts/source.js';

/**
 * How a RunHandle reaches the log. Over HTTP for external producers; the
 * server's executor supplies an in-process one, so handlers and external
 * producers share one API and one set of rules.
 */
export interface ProducerTransport extends ArtifactTransport {
  append(runId: string, events: EventInput[], owner: Owner): Promise<AppendEventsResponse>;
  finish(runId: string, body: FinishRunBody): Promise<Run>;
  heartbeat(runId: string, owner: Owner): Promise<HeartbeatResponse>;
}

export class HttpProducerTransport implements ProducerTransport {
  constructor(private readonly api: HttpApi) {}

  append(runId: string, events: EventInput[], owner: Owner): Promise<AppendEventsResponse> {
    return this.api.request('appendEvents', { params: { id: runId }, body: { events, owner } });
  }

  finish(runId: string, body: FinishRunBody): Promise<Run> {
    return this.api.request('finishRun', { params: { id: runId }, body });
  }

  heartbeat(runId: string, owner: Owner): Promise<HeartbeatResponse> {
    return this.api.request('heartbeat', { params: { id: runId }, body: { owner } });
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
  const response = await api.send('putArtifact', {
    params: { id: runId, name },
    ...(options.replace ? { query: { replace: 'true' } } : {}),
    headers: uploadHeaders(options, size),
    raw: (content instanceof Uint8Array ? content : toReadableStream(content)) as BodyInit,
    timeoutMs: null,
  });
  return (await response.json()) as Artifact;
}
