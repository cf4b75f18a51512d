import { isTerminalStatus, type Run, type RunEvent } from '@runtrail/protocol';

export type RunChange = 'created' | 'updated' | 'deleted';

/** `local`: committed through this node; `remote`: committed by another node sharing the store. */
export type Origin = 'local' | 'remote';

export interface EventListener {
  /** `publishedAt`: performance.now() right after the commit, for delivery latency. */
  (events: RunEvent[], run: Run, publishedAt: number): void;
}
export interface RunListener {
  (change: RunChange, run: Run, origin: Origin): void;
}

/** Whether a run update is the one that ended it (its last seq is the terminal event). */
export function isEndUpdate(change: RunChange, run: Run): boolean {
  return change === 'updated' && isTerminalStatus(run.status) && run.seq === run.snapshot.terminal?.seq;
}

/**
 * In-process fan-out of COMMITTED events. Nothing reaches the hub before the
 * store has made it durable, so a listener that misses something (it was
 * not subscribed yet, or fell behind) can always read it back from the store
 * by seq. The hub is therefore allowed to be best-effort; the log is not.
 */
export class Hub {
  private readonly byRun = new Map<string, Set<EventListener>>();
  private readonly runListeners = new Set<RunListener>();
  private readonly allListeners = new Set<EventListener>();

  subscribe(runId: string, listener: EventListener): () => void {
    let set = this.byRun.get(runId);
    if (!set) this.byRun.set(runId, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0 && this.byRun.get(runId) === set) this.byRun.delete(runId);
    };
  }

  subscribeRuns(listener: RunListener): () => void {
    this.runListeners.add(listener);
    return () => this.runListeners.delete(listener);
  }

  /** Every event committed through THIS node, of every run (metrics, not delivery). */
  subscribeAll(listener: EventListener): () => void {
    this.allListeners.add(listener);
    return () => this.allListeners.delete(listener);
  }

  /** Watchers of this run on THIS node. */
  observers(runId: string): number {
    return this.byRun.get(runId)?.size ?? 0;
  }

  /** Runs that have at least one listener on this node. */
  watchedRuns(): string[] {
    return [...this.byRun.keys()];
  }

  get hasRunListeners(): boolean {
    return this.runListeners.size > 0;
  }

  publishEvents(run: Run, events: RunEvent[], origin: Origin = 'local'): void {
    if (events.length === 0) return;
    const publishedAt = performance.now();
    if (origin === 'local') for (const listener of this.allListeners) listener(events, run, publishedAt);
    const set = this.byRun.get(run.id);
    if (set) for (const listener of [...set]) listener(events, run, publishedAt);
  }

  publishRun(change: RunChange, run: Run, origin: Origin = 'local'): void {
    for (const listener of [...this.runListeners]) listener(change, run, origin);
  }
}
