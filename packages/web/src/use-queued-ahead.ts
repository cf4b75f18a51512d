import { useEffect, useState } from 'react';
import type { HandlerAvailability } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { client } from './client.js';

/**
 * How many queued runs of its handler are older than `run` (claims take the
 * oldest first), asked again whenever the handlers are, while `active` (a limit holds the run); null while unknown
 * (then the place is left out). Same-millisecond runs are not counted ahead.
 */
export function useQueuedAhead(run: Pick<Run, 'id' | 'name' | 'createdAt'>, active: boolean, handlers: HandlerAvailability | null): number | null {
  const [ahead, setAhead] = useState<{ runId: string; n: number } | null>(null);
  useEffect(() => {
    if (!active) return;
    let stopped = false;
    client.countRuns({ status: 'queued', name: run.name, createdBefore: run.createdAt }).then(
      (counts) => !stopped && setAhead({ runId: run.id, n: counts.byStatus.queued }),
      // A place not known is left out: the sentence is true without it.
      () => !stopped && setAhead(null),
    );
    return () => {
      stopped = true;
    };
  }, [active, run.id, run.name, run.createdAt, handlers]);
  return active && ahead?.runId === run.id ? ahead.n : null;
}

