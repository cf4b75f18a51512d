import { eventInputOf, type ArtifactOptions, type OpenedSource, type ProducerTransport, type RecordedEvent } from '@runtrail/client';
import type { Artifact, AppendEventsResponse, FinishRunBody, HeartbeatResponse, Owner, Run } from '@runtrail/protocol';
import type { RunService } from '../runs/run-service.js';
import type { ArtifactService } from '../artifacts/artifact-service.js';

/**
 * A RunHandle's way to the log from inside the server: the same RunService
 * calls the HTTP routes make, without the network. Handlers therefore get
 * exactly the producer SDK that external producers use, with its batching,
 * idempotent ids and heartbeats.
 */
export class InProcessTransport implements ProducerTransport {
  constructor(
    private readonly runs: RunService,
    private readonly artifacts: ArtifactService,
  ) {}

  append(runId: string, events: RecordedEvent[], owner: Owner | null): Promise<AppendEventsResponse> {
    // Parsed back from the texts recorded at the call site: the handler may have changed its objects since.
    return this.runs.append(runId, { events: events.map(eventInputOf), ...(owner ? { owner } : {}) });
  }

  finish(runId: string, body: FinishRunBody): Promise<Run> {
    return this.runs.finish(runId, body);
  }

  heartbeat(runId: string, owner: Owner): Promise<HeartbeatResponse> {
    return this.runs.heartbeat(runId, owner);
  }

  async putArtifact(runId: string, name: string, { content }: OpenedSource, options: ArtifactOptions): Promise<Artifact> {
    return (await this.artifacts.put(runId, name, content instanceof Uint8Array ? [content] : content, options)).artifact;
  }
}
