import type { ProducerTransport } from '@runtrail/client';
import type { AppendEventsResponse, EventInput, FinishRunBody, HeartbeatResponse, Owner, Run } from '@runtrail/protocol';
import type { RunService } from '../runs/run-service.js';

/**
 * A RunHandle's way to the log from inside the server: the same RunService
 * calls the HTTP routes make, without the network. Handlers therefore get
 * exactly the producer SDK that external producers use, with its batching,
 * idempotent ids and heartbeats.
 */
export class InProcessTransport implements ProducerTransport {
  constructor(private readonly runs: RunService) {}

  append(runId: string, events: EventInput[], owner: Owner): Promise<AppendEventsResponse> {
    return this.runs.append(runId, { events, owner });
  }

  finish(runId: string, body: FinishRunBody): Promise<Run> {
    return this.runs.finish(runId, body);
  }

  heartbeat(runId: string, owner: Owner): Promise<HeartbeatResponse> {
    return this.runs.heartbeat(runId, owner);
  }
}
