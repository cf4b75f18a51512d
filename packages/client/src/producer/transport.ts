import type {
  AppendEventsResponse,
  EventInput,
  FinishRunBody,
  HeartbeatResponse,
  Owner,
  Run,
} from '@runtrail/protocol';
import type { HttpApi } from '../http-api.js';

/**
 * How a RunHandle reaches the log. Over HTTP for external producers; the
 * server's executor supplies an in-process one, so handlers and external
 * producers share one API and one set of rules.
 */
export interface ProducerTransport {
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
}
