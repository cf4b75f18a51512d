import { isTerminalStatus, tellsOwnerToStop, type Run, type RunEvent } from '@runtrail/protocol';
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
 * for every watcher of the run that the flush reaches at the same point, so
 * whatever is built from it (a frame) can be built once and shared. It may
 * begin with events the watcher already has (a commit that joined the
 * previous flush after it had passed others; another node's events read
 * twice): a watcher skips those by seq. `publishedAt` is when the oldest of
 * them was published.
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
  segments: Segment[];
}
interface Segment {
  events: EventText[];
  publishedAt: number;
}

/**
 * A flush hands the loop back after this long, so an HTTP append that
 * arrives meanwhile waits for one slice of the fan-out, not all of it. Half
 * a millisecond: a producer sending one event per request at 500/s has 2 ms
 * per round trip, and with 1 ms slices the wait for a slice's end cost one
 * such producer up to 8 % of its rate under 1,000 watchers (stream bench (a)).
 */
export const FLUSH_SLICE_MS = 0.5;

/**
 * The most of one slice's wall time that counts as fan-out work. A slice
 * stops within a few watcher calls of FLUSH_SLICE_MS, so anything beyond
 * this is time the server was not running at all (cores shared with other
 * processes: a bench's observers, other services); resting for it too would
 * make every such stall delay the next flush twice. Measured with the
 * clock, not process.cpuUsage(): that is a getrusage call over all of the
 * process's threads, twice per slice, and it was 5 % of the server's time
 * under 1,000 watchers (stream bench (a), --cpu-prof).
 */
const SLICE_COUNTED_MAX_MS = 2 * FLUSH_SLICE_MS;

/**
 * While commits keep coming, flushes start at most this often, so a watcher
 * gets at most 100 frames a second however many appends arrive: each frame
 * costs a socket write here and a wake-up, a parse and a callback (a
 * browser tab: a render) in the watcher. An event after a quiet spell is
 * flushed at once; under load it waits at most this long for a flush of its
 * own. It binds when a flush is short (few watchers, a fast producer). With
 * 1,000 watchers on 2 shared cores a flush is longer than this by itself
 * (stream bench (a), instrumented: 10-19 flushes a second, each 15-25 ms of
 * slices over 40-86 ms of wall time), and the floor changes nothing there.
 */
export const MIN_FLUSH_INTERVAL_MS = 10;

/**
 * After a flush the hub rests this share of the time its slices ran before
 * the next one may start, so fan-out takes at most about two thirds of the
 * loop while commits keep coming and each later flush carries more events.
 * The rest is what bounds the frames per second (each costs a socket write
 * here and a wake-up in every watcher), and it is also the time an event
 * committed just after a flush waits. Against resting as long as the
 * flush ran, half gave a lower delivery p50 in 29 of 30 paired runs of the
 * stream bench's (a) and (b) on 2 cores with 1,000 watchers, and (a)'s p99
 * medians went from 65-78 to 57-65 ms in three sets, for about 8 % more
 * server CPU per delivered event; no rest at all made (b)'s p99 three
 * times worse (the frames swamp the cores). Figures: README, "How runtrail
 * fans out".
 */
export const FLUSH_REST_SHARE = 0.5;

/**
 * Run `fn` after the immediates that I/O of the coming poll phase queues
 * (the store's group commit is one): an immediate queued now would run
 * before them, so it goes round once more first. A commit waiting to be
 * written never waits behind fan-out this way.
 */
function afterQueuedImmediates(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
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
 *
 * Appends never wait behind fan-out: a flush runs in slices of at most
 * FLUSH_SLICE_MS, with the loop's I/O and the commits it queues served
 * before each slice. The next flush starts no sooner than FLUSH_REST_SHARE
 * of the time the last one's slices ran after its end, so fan-out takes at
 * most about two thirds of the server's time while commits are coming in,
 * and no sooner than MIN_FLUSH_INTERVAL_MS after the last one started. The busier the loop,
 * the more events each flush carries, and the fewer writes each event
 * costs. Commits published while a flush is under way join it for the
 * watchers it has not reached yet (see joinFlush), so a watcher waits at
 * most one flush and one rest for an event.
 */
export class Hub {
  private readonly byRun = new Map<string, Set<EventListener>>();
  private readonly watchersByRun = new Map<string, Set<Watcher>>();
  /** Stream subscriptions that only wait for their ended run's deletion (countWatcher), by run: watching, but given no flushes. */
  private readonly waitingWatchers = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  private flushScheduled = false;
  /** Run-change listeners, whether each also wants other nodes' changes, and what to do when some of those were missed. */
  private readonly runListeners = new Map<RunListener, { remote: boolean; onRemoteGap?: (() => void) | undefined }>();
  private readonly allListeners = new Set<EventListener>();
  /** Who waits to hear that a run's owner was told to stop (held heartbeats), by run. */
  private readonly stopListeners = new Map<string, Set<() => void>>();
  /** Who must hear that a run was deleted (its stream subscriptions), by run. */
  private readonly deleteListeners = new Map<string, Set<() => void>>();
  private readonly watcherCountListeners = new Set<(runId: string) => void>();
  /** Watchers of a run on the other nodes of a cluster, as this node last heard (ClusterWatchers); none alone. */
  private remoteWatchers: (runId: string) => number = () => 0;
  /** whenFlushed callers waiting for the next flush to start, then those waiting for the flush under way to end. */
  private flushWaiters: Array<() => void> = [];
  private flushingWaiters: Array<() => void> = [];

  /** `onWatcherError`: a watcher threw during a flush (the flush goes on to the others). */
  constructor(private readonly onWatcherError: (err: unknown) => void = (err) => console.error('hub watcher failed', err)) {}

  /** Called with every committed batch of the run, synchronously after its commit (in-process handlers). */
  subscribe(runId: string, listener: EventListener): () => void {
    return addTo(this.byRun, runId, listener);
  }

  /** Called once per flush with what was committed since the last one (see Watcher). */
  watch(runId: string, watcher: Watcher): () => void {
    const remove = addTo(this.watchersByRun, runId, watcher);
    this.watchersChanged(runId);
    return () => {
      remove();
      this.watchersChanged(runId);
    };
  }

  /**
   * Count a stream subscription that stays after its run's end only to hear of its deletion
   * (untilDeleted: a page showing the ended run) among the run's watchers, until the returned
   * function is called. Nothing follows a run's end, so it is not a Watcher (no flush has
   * anything for it); but someone still has the run open, and its `observers` said nobody did.
   */
  countWatcher(runId: string): () => void {
    this.waitingWatchers.set(runId, (this.waitingWatchers.get(runId) ?? 0) + 1);
    this.watchersChanged(runId);
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      const left = (this.waitingWatchers.get(runId) ?? 1) - 1;
      if (left > 0) this.waitingWatchers.set(runId, left);
      else this.waitingWatchers.delete(runId);
      this.watchersChanged(runId);
    };
  }

  /**
   * The people watching the run on every node: this node's `watchers` and
   * those other nodes said they have (a run's `observers` in the API, the
   * "N watching" a page is told).
   */
  watchersEverywhere(runId: string): number {
    return this.watchers(runId) + this.remoteWatchers(runId);
  }

  /** How other nodes' watchers are counted (a cluster's ClusterWatchers); call `remoteWatchersChanged` when they change. */
  countRemoteWatchersWith(count: (runId: string) => number): void {
    this.remoteWatchers = count;
  }

  /** Other nodes' watchers of the run changed: its watchersEverywhere may have. */
  remoteWatchersChanged(runId: string): void {
    this.watchersChanged(runId);
  }

  /** Called with the run's id whenever a watcher of it comes or goes, here or (in a cluster) elsewhere. */
  onWatchersChanged(listener: (runId: string) => void): () => void {
    this.watcherCountListeners.add(listener);
    return () => this.watcherCountListeners.delete(listener);
  }

  private watchersChanged(runId: string): void {
    for (const listener of this.watcherCountListeners) listener(runId);
  }

  /**
   * Run changes committed through this node; with `remote: true` also those
   * other nodes committed (live runs lists). Reading other nodes' changes
   * costs a query each, so only listeners that show them ask for them.
   */
  subscribeRuns(listener: RunListener, options: { remote?: boolean; onRemoteGap?: () => void } = {}): () => void {
    this.runListeners.set(listener, { remote: options.remote === true, onRemoteGap: options.onRemoteGap });
    return () => this.runListeners.delete(listener);
  }

  /** Other nodes' run changes may have been missed (the database listener reconnected): their listeners start over. */
  remoteRunChangesLost(): void {
    for (const { remote, onRemoteGap } of [...this.runListeners.values()]) if (remote) onRemoteGap?.();
  }

  /**
   * Called when the run's owner is told to stop (a cancel request, an end:
   * tellsOwnerToStop) through this node, or another node says so (its `s`
   * notification), or that may have been missed (a reconnect). Unlike
   * `subscribe`, it makes no node read the run's events from the store.
   */
  onStop(runId: string, listener: () => void): () => void {
    return addTo(this.stopListeners, runId, listener);
  }

  /** Another node told the run's owner to stop. */
  publishStop(runId: string): void {
    const set = this.stopListeners.get(runId);
    if (set) for (const listener of [...set]) listener();
  }

  /** Other nodes' stops may have been missed (the database listener reconnected): every waiter looks again. */
  remoteStopsLost(): void {
    for (const set of [...this.stopListeners.values()]) for (const listener of [...set]) listener();
  }

  /**
   * Called once when the run is deleted, through this node or another one
   * (its `d` notification, even one too big to carry the run). Unlike
   * subscribeRuns with `remote`, it costs no store read per change.
   */
  onDeleted(runId: string, listener: () => void): () => void {
    return addTo(this.deleteListeners, runId, listener);
  }

  /** The run is gone: its deletion listeners hear it (publishRun does this for a `deleted` change). */
  publishDeleted(runId: string): void {
    const set = this.deleteListeners.get(runId);
    if (!set) return;
    this.deleteListeners.delete(runId);
    for (const listener of [...set]) listener();
  }

  /** Runs someone here waits to hear the deletion of (checked again after missed notifications). */
  deletionWatchedRuns(): string[] {
    return [...this.deleteListeners.keys()];
  }

  /** Every event committed through THIS node, of every run (metrics, not delivery). */
  subscribeAll(listener: EventListener): () => void {
    this.allListeners.add(listener);
    return () => this.allListeners.delete(listener);
  }

  /** Watchers and listeners of this run on THIS node (whether anything here follows it). */
  observers(runId: string): number {
    return (this.byRun.get(runId)?.size ?? 0) + this.watchers(runId);
  }

  /**
   * Stream subscriptions of this run on THIS node: the people watching it
   * (a run's `observers` in the API). A listener such as the executor
   * running the run is not someone watching it.
   */
  watchers(runId: string): number {
    return (this.watchersByRun.get(runId)?.size ?? 0) + (this.waitingWatchers.get(runId) ?? 0);
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
    if (this.stopListeners.has(run.id) && events.some((e) => tellsOwnerToStop(e.type))) this.publishStop(run.id);
  }

  /**
   * Another node's committed events of one run, as the texts the store
   * read, for this node's watchers: queued for the same shared-frame flush
   * as local commits. Only for runs no in-process listener follows here
   * (those take parsed events and the run: publishEvents).
   */
  publishRemoteTexts(runId: string, texts: EventText[]): void {
    if (texts.length === 0 || !this.watchersByRun.has(runId)) return;
    this.queue(runId, texts, performance.now());
  }

  /**
   * Resolves once everything queued for watchers before the call has been
   * handed to them (the flush that took it has ended). A reader that
   * publishes a log page by page (another node's appends) waits for it
   * between pages, so pages never pile up here faster than they go out.
   */
  whenFlushed(): Promise<void> {
    if (this.pending.size === 0 && !this.flushInProgress) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  publishRun(change: RunChange, run: Run, origin: Origin = 'local'): void {
    if (change === 'deleted') this.publishDeleted(run.id);
    for (const [listener, { remote }] of [...this.runListeners]) {
      if (origin === 'local' || remote) listener(change, run, origin);
    }
  }

  private queue(runId: string, texts: EventText[], publishedAt: number): void {
    if (this.flushInProgress) this.joinFlush(runId, texts);
    let pending = this.pending.get(runId);
    if (!pending) this.pending.set(runId, (pending = { segments: [] }));
    insertSegment(pending.segments, texts, publishedAt);
    this.scheduleFlush();
  }

  /** The flush in progress: what is left of it (watchers still to call, in order). */
  private readonly flushing: Array<{ runId: string; segment: Segment; watchers: Watcher[]; next: number }> = [];
  private flushInProgress = false;
  /**
   * Time the flush in progress has run so far (its slices, each counted up
   * to SLICE_COUNTED_MAX_MS; not the I/O between them): the next flush rests
   * FLUSH_REST_SHARE of it.
   */
  private flushBusyMs = 0;
  /** When the flush in progress (or the last one) started, for MIN_FLUSH_INTERVAL_MS. */
  private flushStartedAt = 0;
  /** When the next flush may start (performance.now()), so fan-out leaves the loop time for appends. */
  private nextFlushAt = 0;

  /**
   * Events committed while a flush of their run is under way also go to the
   * watchers that flush has not reached yet, in the frame they were about to
   * get: a watcher then waits at most one flush and one rest for any event,
   * not the rest of this flush as well. They stay queued for the next flush
   * too, for the watchers already passed; the others skip them by seq.
   */
  private joinFlush(runId: string, texts: EventText[]): void {
    for (let k = this.flushing.length - 1; k >= 0; k--) {
      const job = this.flushing[k]!;
      if (job.runId !== runId) continue;
      const events = job.segment.events;
      if (job.next < job.watchers.length && events[events.length - 1]!.seq + 1 === texts[0]!.seq) {
        job.segment = { events: events.concat(texts), publishedAt: job.segment.publishedAt };
      }
      return;
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushInProgress) return;
    this.flushScheduled = true;
    this.flushWhenDue();
  }

  /**
   * Flush once nextFlushAt is less than a millisecond away. A timer goes by
   * the loop's clock, read when the loop's turn began, so it can come early
   * by as long as that turn has run; it then waits again.
   */
  private readonly flushWhenDue = (): void => {
    const wait = this.nextFlushAt - performance.now();
    if (wait >= 1) setTimeout(this.flushWhenDue, wait).unref?.();
    else afterQueuedImmediates(this.flush);
  };

  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.flushInProgress = true;
    this.flushBusyMs = 0;
    this.flushStartedAt = performance.now();
    for (const [runId, { segments }] of this.pending) {
      const watchers = this.watchersByRun.get(runId);
      if (watchers) for (const segment of segments) this.flushing.push({ runId, segment, watchers: [...watchers], next: 0 });
    }
    this.pending.clear();
    this.flushingWaiters = this.flushWaiters;
    this.flushWaiters = [];
    this.continueFlush();
  };

  /** Call the flush's watchers until it is done or this slice is used up (then yield to I/O and go on). */
  private readonly continueFlush = (): void => {
    const sliceStarted = performance.now();
    let calls = 0;
    while (this.flushing.length > 0) {
      const job = this.flushing[0]!;
      const current = this.watchersByRun.get(job.runId);
      while (job.next < job.watchers.length) {
        const watcher = job.watchers[job.next++]!;
        // Gone since the flush began (unsubscribed, disconnected): nothing to deliver.
        if (current?.has(watcher)) {
          try {
            watcher(job.segment.events, job.segment.publishedAt);
          } catch (err) {
            // One broken watcher must not stop every other watcher's delivery (this flush and all later ones).
            this.onWatcherError(err);
          }
        }
        const ran = ++calls % 16 === 0 ? performance.now() - sliceStarted : 0;
        if (ran >= FLUSH_SLICE_MS) {
          this.flushBusyMs += Math.min(ran, SLICE_COUNTED_MAX_MS);
          afterQueuedImmediates(this.continueFlush);
          return;
        }
      }
      this.flushing.shift();
    }
    const ended = performance.now();
    this.flushBusyMs += Math.min(ended - sliceStarted, SLICE_COUNTED_MAX_MS);
    this.nextFlushAt = Math.max(ended + this.flushBusyMs * FLUSH_REST_SHARE, this.flushStartedAt + MIN_FLUSH_INTERVAL_MS);
    this.flushInProgress = false;
    // Nothing queued meanwhile: those waiting for the next flush have nothing left to wait for either.
    const flushed = this.pending.size > 0 ? this.flushingWaiters : this.flushingWaiters.concat(this.flushWaiters.splice(0));
    this.flushingWaiters = [];
    for (const resolve of flushed) resolve();
    // Published while this flush was under way: their turn comes now.
    if (this.pending.size > 0) this.scheduleFlush();
  };
}

/**
 * Put a publish's texts among a run's waiting segments in seq order, joined
 * to the segments they continue or precede. Concurrent appends of one run
 * (PostgreSQL runs two commits of a run at once) can be published in another
 * order than their seqs: kept apart, a watcher would take the later one
 * first, see a gap and read the store, every watcher of the run at once.
 * Overlaps (another node's events read back twice) stay segments of their
 * own, and watchers skip what they already have by seq.
 */
function insertSegment(segments: Segment[], texts: EventText[], publishedAt: number): void {
  const first = texts[0]!.seq;
  const lastSeq = texts[texts.length - 1]!.seq;
  let at = segments.length;
  while (at > 0 && segments[at - 1]!.events[0]!.seq > first) at--;
  const before = segments[at - 1];
  const after = segments[at];
  if (before && before.events[before.events.length - 1]!.seq + 1 === first) {
    for (const text of texts) before.events.push(text);
    if (after && after.events[0]!.seq === lastSeq + 1) {
      for (const text of after.events) before.events.push(text);
      segments.splice(at, 1);
    }
  } else if (after && after.events[0]!.seq === lastSeq + 1) {
    segments[at] = { events: [...texts, ...after.events], publishedAt: Math.min(publishedAt, after.publishedAt) };
  } else {
    segments.splice(at, 0, { events: texts.slice(), publishedAt });
  }
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
