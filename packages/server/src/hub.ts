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
  /** Run-change listeners, and whether each also wants other nodes' changes. */
  private readonly runListeners = new Map<RunListener, { remote: boolean }>();
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

  /**
   * Run changes committed through this node; with `remote: true` also those
   * other nodes committed (live runs lists). Reading other nodes' changes
   * costs a query each, so only listeners that show them ask for them.
   */
  subscribeRuns(listener: RunListener, options: { remote?: boolean } = {}): () => void {
    this.runListeners.set(listener, { remote: options.remote === true });
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

  /** Whether anyone here wants other nodes' run changes. */
  get wantsRemoteRunChanges(): boolean {
    for (const { remote } of this.runListeners.values()) if (remote) return true;
    return false;
  }

  publishEvents(run: Run, events: RunEvent[], origin: Origin = 'local'): void {
    if (events.length === 0) return;
    const publishedAt = performance.now();
    if (origin === 'local') for (const listener of this.allListeners) listener(events, run, publishedAt);
    const set = this.byRun.get(run.id);
    if (set) for (const listener of [...set]) listener(events, run, publishedAt);
  }

  publishRun(change: RunChange, run: Run, origin: Origin = 'local'): void {
    for (const [listener, { remote }] of [...this.runListeners]) {
      if (origin === 'local' || remote) listener(change, run, origin);
    }
  }
}
