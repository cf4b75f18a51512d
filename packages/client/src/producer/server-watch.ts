import type { Owner } from '@runtrail/protocol';
import type { Clock } from '../clock.js';
import { isRetryable } from '../http-api.js';
import type { ProducerTransport } from './transport.js';

/**
 * The server a handle sends to stopped answering, or answers again: said
 * once per change, however many retries the outage takes.
 */
export type ServerChange =
  | {
      state: 'not_answering';
      /** When the first request of the outage failed (epoch ms). */
      since: number;
      /** Why it failed (the request's error: a refused connection, a timeout, a 503). */
      error: unknown;
      /**
       * When the run's lease lapses unless a heartbeat reaches the server
       * first (epoch ms): the reaper then ends the run `orphaned`. Null for
       * a handle without an owner, whose run another process heartbeats.
       */
      leaseExpiresAt: number | null;
    }
  | {
      state: 'answering';
      /** When the outage began (the `since` said with `not_answering`). */
      since: number;
      /** When the first request after it was answered (epoch ms). */
      at: number;
    };

export type ServerChangeListener = (change: ServerChange) => void;

/**
 * `transport`, telling `listener` when its server stops and starts answering.
 * An error worth retrying (unreachable, timed out, 503) is not answering;
 * any answer, a refusal too, is answering. A request the handle aborted
 * itself (a held heartbeat when it closes) says nothing of the server.
 */
export function watchServer(transport: ProducerTransport, options: { leaseTtlMs: number; owned: boolean; clock: Clock; listener: () => ServerChangeListener | null }): ProducerTransport {
  let since: number | null = null;
  // The run was just created or attached: its lease runs from about now.
  let leaseExpiresAt = options.clock.now() + options.leaseTtlMs;
  const observe = async <T>(request: () => Promise<T>, renews: (answer: T, sentAt: number) => number | null, signal?: AbortSignal): Promise<T> => {
    const sentAt = options.clock.now();
    let answer: T;
    try {
      answer = await request();
    } catch (err) {
      if (signal?.aborted) throw err;
      if (isRetryable(err)) {
        if (since === null) {
          since = options.clock.now();
          options.listener()?.({ state: 'not_answering', since, error: err, leaseExpiresAt: options.owned ? leaseExpiresAt : null });
        }
      } else answered();
      throw err;
    }
    const renewedTo = renews(answer, sentAt);
    if (renewedTo !== null) leaseExpiresAt = Math.max(leaseExpiresAt, renewedTo);
    answered();
    return answer;
  };
  const answered = () => {
    if (since === null) return;
    const began = since;
    since = null;
    options.listener()?.({ state: 'answering', since: began, at: options.clock.now() });
  };
  // The server renewed the lease somewhere between sending and answering: from the sending, to be safe.
  const renewedBy = (owner: Owner | null) => (_answer: unknown, sentAt: number) => (owner ? sentAt + options.leaseTtlMs : null);
  return {
    append: (runId, events, owner) => observe(() => transport.append(runId, events, owner), renewedBy(owner)),
    finish: (runId, body) => observe(() => transport.finish(runId, body), () => null),
    heartbeat: (runId, owner, waitMs, signal) =>
      observe(
        () => transport.heartbeat(runId, owner, waitMs, signal),
        (answer, sentAt) => answer.leaseExpiresAt ?? sentAt + options.leaseTtlMs,
        signal,
      ),
    putArtifact: (runId, name, source, artifactOptions) => observe(() => transport.putArtifact(runId, name, source, artifactOptions), () => null),
  };
}
