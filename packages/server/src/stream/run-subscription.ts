import {
  RuntrailError,
  isTerminalStatus,
  isTerminalType,
  runDeleted,
  terminalStatusOf,
  type Run,
  type StreamEnd,
} from '@runtrail/protocol';
import type { EventText, JoinedEventTexts, RunStore } from '@runtrail/store';
import type { Hub } from '../hub.js';
import { TARGET_FRAME_BYTES } from './frames.js';
import type { ObserverCounts } from './observer-counts.js';
import type { Outlet } from './outlet.js';

/**
 * Events read from the store per catch-up query (of texts one by one; and
 * held flushes at most). Each read is bounded by SubscriptionContext's
 * readPageBytes too: 1,000 events of 1 MiB were a GB per read.
 */
export const CATCH_UP_PAGE = 1000;
/**
 * Joined pages are sized to be one frame of about TARGET_FRAME_BYTES: the
 * first asks for this many events, the next ones for as many as the last
 * page's average event size fits, at most CATCH_UP_PAGE.
 */
const FIRST_JOINED_PAGE = 64;
/** How long a subscription waits before reading again when the store is unavailable. */
const UNAVAILABLE_RETRY_MS = 500;

/** How a transport frames what a subscription delivers. */
export interface SubscriptionSink {
  outlet: Outlet;
  /**
   * Consecutive events, in seq order; the sink frames them (several per
   * frame) and stops when the outlet is over its bound. Returns how many of
   * them it sent (a prefix). The same array from a hub flush goes to every
   * caught-up subscriber, so a sink may cache what it builds from it.
   */
  events(events: EventText[]): number;
  /**
   * A catch-up page read joined by the store (see JoinedEventTexts), sent
   * as one frame. Used when both the sink and the store have it; otherwise
   * catch-up reads texts one by one and passes them to `events`. Only
   * called while the outlet is not blocked.
   */
  joined?(page: JoinedEventTexts): void;
  /** Its events go out without their runId (a compact subscription): joined pages are read so. */
  readonly compact?: boolean;
  /**
   * Set when the subscriber asked to be told how many watch the run on this
   * node (`observers: true`): called with the count while it is subscribed
   * (see ObserverCounts).
   */
  readonly observers?: ((count: number) => void) | undefined;
  /**
   * Stay after `end`, until the run is deleted (then `fail` with runDeleted)
   * or the subscription is closed: the subscriber asked for `untilDeleted`.
   */
  readonly untilDeleted?: boolean;
  /** Sent once, right after the frame with the terminal event. */
  end(end: StreamEnd): void;
  /** The subscription cannot go on (e.g. the store failed); it is already closed. */
  fail(err: RuntrailError): void;
}

/**
 * A reader that says it is past the last event of a running run (a seq
 * from another run, a typo) would wait for ever for events numbered from
 * there; it is told instead. Null when `after` is a position in the run,
 * and for an ended run (its reader gets `end` at once, field note 7).
 */
export function positionProblem(runId: string, after: number, run: Pick<Run, 'seq' | 'status'>): RuntrailError | null {
  const { seq } = run;
  if (after <= seq || isTerminalStatus(run.status)) return null;
  return new RuntrailError(
    'invalid_request',
    `after=${after} is past the end of run ${runId}: its last event is seq ${seq}; read from at most ${seq} (0 for the whole log)`,
    { runId, after, seq },
  );
}

/**
 * The events of a hub flush after `seq`, one array per (flush, position):
 * subscribers that already have the start of a flush (a previous flush
 * reached them after these events joined it) take the same tail, so its
 * frames are still built once, not once per subscriber.
 */
const tails = new WeakMap<EventText[], Map<number, EventText[]>>();
function sharedTail(events: EventText[], seq: number): EventText[] {
  let bySeq = tails.get(events);
  if (!bySeq) tails.set(events, (bySeq = new Map()));
  let tail = bySeq.get(seq);
  if (!tail) bySeq.set(seq, (tail = events.filter((e) => e.seq > seq)));
  return tail;
}

/**
 * What the subscriptions of one transport share: made once, not per
 * subscription (thousands of idle watchers each carrying their own copy,
 * and closures, add up).
 */
export interface SubscriptionContext {
  store: RunStore;
  hub: Hub;
  onError?: ((err: unknown, runId: string) => void) | undefined;
  /** Live events reached the connection; `publishedAt` is when the hub got the oldest of them (right after its commit). */
  onDelivered?: ((publishedAt: number) => void) | undefined;
  /** The connection was over its bound: the subscription waits for the drain and resumes from the store. */
  onResync?: (() => void) | undefined;
  /** Where subscriptions that asked for their run's watcher count follow it. */
  observerCounts: ObserverCounts;
  /**
   * Bytes of events one catch-up read returns at most (at least one event),
   * and held flushes hold at most (readPageBytes): a page cut short by them
   * says so (EventTextPage.cut) and the subscription reads on.
   */
  readPageBytes: number;
}

/**
 * One subscriber's position in one run's log: delivers every event with
 * seq > after exactly once, in order, then ends after the terminal event.
 *
 * The store is the source; the hub is only a fast path. The hub watcher is
 * attached BEFORE the first store read, and a hub flush is used only when it
 * starts exactly at lastSent + 1 while nothing else is in flight; anything
 * else (a gap, a read in progress, a full send buffer) makes the subscription
 * read from the store at lastSent. Every event is committed before it is
 * published, so an event committed during a read is either in that read or
 * published to the already-attached listener afterwards: the subscribe race
 * of field note 1 cannot happen, and there is no timing to tune.
 */
export class RunSubscription {
  readonly runId: string;
  private lastSent: number;
  private readonly context: SubscriptionContext;
  readonly sink: SubscriptionSink;
  private unsubscribeHub: (() => void) | null = null;
  private unfollowCount: (() => void) | null = null;
  private unwatchDeletion: (() => void) | null = null;
  /** Ended (`end` sent) and waiting only for the run's deletion (untilDeleted). */
  private awaitingDeletion = false;
  /** Takes back, while awaitingDeletion, its count among the run's watchers (Hub.countWatcher). */
  private uncountWatcher: (() => void) | null = null;
  private pumping = false;
  /** The store must be read again before resting (a pump was asked for while one ran, or too much was held). */
  private again = false;
  /**
   * Hub flushes that arrived while a store read was in flight (at most a
   * page of events). After the read they usually continue it exactly, so the
   * subscription delivers them and rests instead of reading again: under a
   * steady stream of commits a read that always overlaps a flush would
   * otherwise read again forever and never rejoin the shared flushes.
   */
  private held: Array<{ events: EventText[]; publishedAt: number }> | null = null;
  private heldCount = 0;
  private heldBytes = 0;
  private waitingForDrain = false;
  private done = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(context: SubscriptionContext, runId: string, after: number, sink: SubscriptionSink) {
    this.context = context;
    this.sink = sink;
    this.runId = runId;
    this.lastSent = after;
  }

  /** The last seq delivered to the transport. */
  get position(): number {
    return this.lastSent;
  }

  get closed(): boolean {
    return this.done && !this.awaitingDeletion;
  }

  /** Attach to the hub, then send the backlog. The caller checked that the run exists. */
  start(): void {
    if (this.done) return;
    // Before the first read too: a deletion after it is heard here, one before it is found by the read (endIfTerminal).
    this.unwatchDeletion = this.context.hub.onDeleted(this.runId, this.onDeleted);
    this.unsubscribeHub = this.context.hub.watch(this.runId, this.onHub);
    if (this.sink.observers) this.unfollowCount = this.context.observerCounts.follow(this.runId, this.sink.outlet, this.sink.observers);
    void this.pump();
  }

  close(): void {
    this.awaitingDeletion = false;
    this.unwatchDeletion?.();
    this.unwatchDeletion = null;
    this.uncountWatcher?.();
    this.uncountWatcher = null;
    if (this.done) return;
    this.done = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.unsubscribeHub?.();
    this.unsubscribeHub = null;
    this.unfollowCount?.();
    this.unfollowCount = null;
  }

  private readonly onDeleted = (): void => {
    if (this.closed) return;
    this.close();
    this.sink.fail(runDeleted(this.runId));
  };

  /** The terminal event was sent (or the subscriber was already past it): say `end`, then go, or wait for the deletion. */
  private ended(end: StreamEnd): void {
    this.close();
    if (this.sink.untilDeleted) {
      // close() let go of the deletion listener too: take it again, now alone.
      this.awaitingDeletion = true;
      this.unwatchDeletion = this.context.hub.onDeleted(this.runId, this.onDeleted);
      // Still connected with the run open: one of its observers until it goes, as before its end.
      this.uncountWatcher = this.context.hub.countWatcher(this.runId);
    }
    this.sink.end(end);
  }

  private readonly onHub = (events: EventText[], publishedAt: number): void => {
    if (this.done) return;
    if (this.pumping) {
      const bytes = this.heldCount + events.length <= CATCH_UP_PAGE ? textBytes(events) : Infinity;
      if (this.heldBytes + bytes <= this.context.readPageBytes) {
        (this.held ??= []).push({ events, publishedAt });
        this.heldCount += events.length;
        this.heldBytes += bytes;
      } else {
        this.again = true;
      }
      return;
    }
    const last = events[events.length - 1]!.seq;
    if (last <= this.lastSent) return;
    if (events[0]!.seq > this.lastSent + 1 || this.sink.outlet.blocked) {
      void this.pump();
      return;
    }
    // Caught up: the flush's own array (or its shared tail), whose frames every subscriber at this position shares.
    const fresh = events[0]!.seq === this.lastSent + 1 ? events : sharedTail(events, this.lastSent);
    if (!this.deliver(fresh)) void this.pump();
    else this.context.onDelivered?.(publishedAt);
  };

  /**
   * Send consecutive events while the connection is under its bound.
   * Returns false when it stopped early (the rest is re-read from the store).
   */
  private deliver(events: EventText[]): boolean {
    if (this.done) return true;
    const sink = this.sink;
    // Nothing follows a terminal event, so it can only be the last one; the
    // array is passed whole otherwise (its frames may be shared).
    const sent = sink.events(events);
    if (sent === 0) return false;
    const last = events[sent - 1]!;
    this.lastSent = last.seq;
    if (sent < events.length) return false;
    if (isTerminalType(last.type)) this.ended({ runId: this.runId, status: terminalStatusOf(last.type), seq: last.seq });
    return true;
  }

  /** Read from the store at lastSent until caught up (or blocked, or ended). */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    let joinedLimit = FIRST_JOINED_PAGE;
    let pages = 0;
    try {
      for (;;) {
        // A store read that does not wait on I/O (SQLite) resolves without giving the event loop a
        // turn: a catch-up of a long log held every other request of the server until its last
        // page. One turn between pages lets them in (what arrives meanwhile is in the next read).
        if (pages++ > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        // The read below sees everything committed before it starts, held flushes included.
        this.again = false;
        this.dropHeld();
        if (this.done) return;
        if (this.sink.outlet.blocked) {
          this.waitForDrain();
          return;
        }
        const { store } = this.context;
        if (this.sink.joined && store.readJoinedEventTexts) {
          const limit = joinedLimit;
          const page = await store.readJoinedEventTexts(this.runId, this.lastSent, limit, {
            compact: this.sink.compact === true,
            maxBytes: this.context.readPageBytes,
          });
          if (this.done) return;
          if (page.count > 0) {
            // Sized for about one frame by the events before it; these were bigger: read fewer.
            joinedLimit = Math.max(1, Math.min(CATCH_UP_PAGE, Math.floor((TARGET_FRAME_BYTES * page.count) / page.json.length)));
            if (page.count > 1 && page.json.length > 2 * TARGET_FRAME_BYTES) continue;
            // Blocked meanwhile (another subscription of the connection wrote): go round to wait for the drain.
            if (!this.deliverJoined(page)) continue;
          } else if (await this.endIfTerminal()) return;
          // As below: a short page reached the head as of that read, unless its bytes cut it.
          if (page.count < limit && !page.cut && !this.again && this.deliverHeld()) return;
          continue;
        }
        const { texts: page, cut } = await store.readEventTextPage(this.runId, this.lastSent, CATCH_UP_PAGE, {
          maxBytes: this.context.readPageBytes,
        });
        if (this.done) return;
        const fresh = page.length > 0 && page[0]!.seq <= this.lastSent ? page.filter((e) => e.seq > this.lastSent) : page;
        // Stopped by a full buffer: go round to wait for the drain.
        if (fresh.length > 0 && !this.deliver(fresh)) continue;
        // Nothing after lastSent in an ended run: the subscriber started at
        // or after the terminal event, and is told so rather than left
        // waiting for events that will never come (field note 7).
        if (fresh.length === 0 && (await this.endIfTerminal())) return;
        // A short page means we reached the head as of that read (unless
        // its bytes cut it: more is stored); anything committed later was
        // published to our watcher: held while we are still here (delivered
        // now, unless it leaves a gap), or taken on the fast path once we are not.
        if (page.length < CATCH_UP_PAGE && !cut && !this.again && this.deliverHeld()) return;
      }
    } catch (err) {
      // The store is unreachable for now (a database restarting): try again
      // from the same position instead of ending the subscription.
      if (RuntrailError.isCode(err, 'unavailable') && !this.done) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          void this.pump();
        }, UNAVAILABLE_RETRY_MS);
        this.retryTimer.unref?.();
        return;
      }
      this.close();
      this.context.onError?.(err, this.runId);
      this.sink.fail(
        err instanceof RuntrailError ? err : new RuntrailError('internal', `reading run ${this.runId} failed; see the server log`),
      );
    } finally {
      this.dropHeld();
      this.pumping = false;
    }
  }

  /** Send a joined catch-up page as one frame unless the outlet is over its bound; false when it is. */
  private deliverJoined(page: JoinedEventTexts): boolean {
    if (this.done) return true;
    const sink = this.sink;
    if (sink.outlet.blocked || sink.outlet.closed) return false;
    sink.joined!(page);
    this.lastSent = page.last;
    if (isTerminalType(page.lastType)) this.ended({ runId: this.runId, status: terminalStatusOf(page.lastType), seq: page.last });
    return true;
  }

  /** Deliver the flushes held during the last read; false when they leave a gap or the buffer filled (read the store). */
  private deliverHeld(): boolean {
    const held = this.held;
    this.dropHeld();
    if (!held) return true;
    for (const { events, publishedAt } of held) {
      if (this.done) return true;
      if (events[events.length - 1]!.seq <= this.lastSent) continue;
      if (events[0]!.seq > this.lastSent + 1) return false;
      const fresh = events[0]!.seq === this.lastSent + 1 ? events : sharedTail(events, this.lastSent);
      if (!this.deliver(fresh)) return false;
      this.context.onDelivered?.(publishedAt);
    }
    return true;
  }

  private dropHeld(): void {
    this.held = null;
    this.heldCount = 0;
    this.heldBytes = 0;
  }

  /** End the subscription if the run has ended and everything up to its end is behind lastSent, or it is gone. */
  private async endIfTerminal(): Promise<boolean> {
    const run = await this.context.store.getRun(this.runId);
    if (this.done) return false;
    if (run === null) {
      // Deleted since the subscriber was let in (its log read back empty): said as a deletion heard live is.
      this.onDeleted();
      return true;
    }
    if (!isTerminalStatus(run.status) || run.seq > this.lastSent) return false;
    this.ended({ runId: this.runId, status: run.status, seq: run.seq });
    return true;
  }

  private waitForDrain(): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    this.context.onResync?.();
    this.sink.outlet.whenDrained(() => {
      this.waitingForDrain = false;
      void this.pump();
    });
  }
}

/** What holding events' texts costs, near enough: their length in characters (readPageBytes bounds them so). */
function textBytes(events: EventText[]): number {
  let bytes = 0;
  for (const e of events) bytes += e.json.length;
  return bytes;
}
