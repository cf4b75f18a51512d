import { isTerminalStatus, type Run, type RunEvent } from '@runtrail/protocol';
import { eventTextOf, type EventText } from '@runtrail/store';

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

/**
 * A watcher of one run's log (a stream subscription). It is called once per
 * flush, not once per commit: `events` holds every event published for the
 * run since the previous flush, consecutive in seq, and is the SAME array
 * for every watcher of the run, so whatever is built from it (a frame) can
 * be built once and shared. `publishedAt` is when the oldest of them was
 * published.
 */
export interface Watcher {
  (events: EventText[], publishedAt: number): void;
}

/** Whether a run update is the one that ended it (its last seq is the terminal event). */
export function isEndUpdate(change: RunChange, run: Run): boolean {
  return change === 'updated' && isTerminalStatus(run.status) && run.seq === run.snapshot.terminal?.seq;
}

/** Events of one run waiting for the next flush: runs of consecutive seqs, oldest first. */
interface Pending {
  segments: Array<{ events: EventText[]; publishedAt: number }>;
}

/**
 * In-process fan-out of COMMITTED events. Nothing reaches the hub before the
 * store has made it durable, so a listener that misses something (it was
 * not subscribed yet, or fell behind) can always read it back from the store
 * by seq. The hub is therefore allowed to be best-effort; the log is not.
 *
 * Watchers are flushed, not called per commit: a publish queues the events
 * and schedules one flush (setImmediate, after the I/O of this turn), so
 * under load each flush carries more events and the number of socket writes
 * stays at one per watcher per flush, however many appends came in.
 */
export class Hub {
  private readonly byRun = new Map<string, Set<EventListener>>();
  private readonly watchersByRun = new Map<string, Set<Watcher>>();
  private readonly pending = new Map<string, Pending>();
  private flushScheduled = false;
  /** Run-change listeners, and whether each also wants other nodes' changes. */
  private readonly runListeners = new Map<RunListener, { remote: boolean }>();
  private readonly allListeners = new Set<EventListener>();

  /** Called with every committed batch of the run, synchronously after its commit (in-process handlers). */
  subscribe(runId: string, listener: EventListener): () => void {
    return addTo(this.byRun, runId, listener);
  }

  /** Called once per flush with what was committed since the last one (see Watcher). */
  watch(runId: string, watcher: Watcher): () => void {
    return addTo(this.watchersByRun, runId, watcher);
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

  /** Watchers and listeners of this run on THIS node. */
  observers(runId: string): number {
    return (this.byRun.get(runId)?.size ?? 0) + (this.watchersByRun.get(runId)?.size ?? 0);
  }

  /** Runs that have at least one watcher or listener on this node. */
  watchedRuns(): string[] {
    return [...new Set([...this.byRun.keys(), ...this.watchersByRun.keys()])];
  }

  /** Whether anyone here wants other nodes' run changes. */
  get wantsRemoteRunChanges(): boolean {
    for (const { remote } of this.runListeners.values()) if (remote) return true;
    return false;
  }

  /**
   * Committed events of one run, in seq order. `texts` are their JSON texts
   * as the store kept them (AppendResult.appendedText); without them (events
   * read back from the store) each is serialized here, once.
   */
  publishEvents(run: Run, events: RunEvent[], origin: Origin = 'local', texts?: EventText[]): void {
    if (events.length === 0) return;
    const publishedAt = performance.now();
    if (origin === 'local') for (const listener of this.allListeners) listener(events, run, publishedAt);
    const set = this.byRun.get(run.id);
    if (set) for (const listener of [...set]) listener(events, run, publishedAt);
    if (this.watchersByRun.has(run.id)) this.queue(run.id, texts ?? events.map(eventTextOf), publishedAt);
  }

  publishRun(change: RunChange, run: Run, origin: Origin = 'local'): void {
    for (const [listener, { remote }] of [...this.runListeners]) {
      if (origin === 'local' || remote) listener(change, run, origin);
    }
  }

  private queue(runId: string, texts: EventText[], publishedAt: number): void {
    let pending = this.pending.get(runId);
    if (!pending) this.pending.set(runId, (pending = { segments: [] }));
    const last = pending.segments[pending.segments.length - 1];
    // Commits of one run through one node come in seq order; anything else
    // (another node's events read back late) starts a segment of its own,
    // and watchers sort out gaps and repeats by seq.
    if (last && last.events[last.events.length - 1]!.seq + 1 === texts[0]!.seq) {
      for (const text of texts) last.events.push(text);
    } else {
      pending.segments.push({ events: texts.slice(), publishedAt });
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const pending = [...this.pending];
    this.pending.clear();
    for (const [runId, { segments }] of pending) {
      for (const { events, publishedAt } of segments) {
        const watchers = this.watchersByRun.get(runId);
        if (!watchers) break;
        for (const watcher of [...watchers]) watcher(events, publishedAt);
      }
    }
  };
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): () => void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
  return () => {
    set!.delete(value);
    if (set!.size === 0 && map.get(key) === set) map.delete(key);
  };
}
