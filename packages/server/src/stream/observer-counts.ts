import { OBSERVER_COUNT_INTERVAL_MS } from '@runtrail/protocol';
import type { Hub } from '../hub.js';
import type { Outlet } from './outlet.js';

/** One subscription that asked to be told its run's watcher count (`observers: true`). */
interface Follower {
  outlet: Outlet;
  send: (count: number) => void;
  /** The count it was told last (-1: none yet), so an unchanged count is not sent again. */
  told: number;
  waitingForDrain: boolean;
}

interface RunFollowers {
  followers: Set<Follower>;
  /** When the last change was told to all of them (performance.now()). */
  toldAt: number;
  timer: ReturnType<typeof setTimeout> | null;
}

/**
 * Tells the subscriptions that asked how many watch their run (on every
 * node: Hub.watchersEverywhere, the run's `observers` in the API), so a page
 * showing "N watching" never polls for it. A subscriber is told at once when
 * it starts; after that a run's followers hear of a change at most once per
 * OBSERVER_COUNT_INTERVAL_MS: a thousand pages opening at once cost each of
 * them a message a second, not a thousand. The last change is always told
 * (a trailing timer), so the count settles on the true one.
 *
 * A follower whose connection is over its send bound is not written to (its
 * queue stays bounded); it is told the count of the moment once it drains.
 */
export class ObserverCounts {
  private readonly runs = new Map<string, RunFollowers>();

  constructor(private readonly hub: Hub) {
    hub.onWatchersChanged((runId) => this.changed(runId));
  }

  /** Tell `send` the run's count now and whenever it changes, until the returned function is called. */
  follow(runId: string, outlet: Outlet, send: (count: number) => void): () => void {
    let run = this.runs.get(runId);
    if (!run) this.runs.set(runId, (run = { followers: new Set(), toldAt: -Infinity, timer: null }));
    const follower: Follower = { outlet, send, told: -1, waitingForDrain: false };
    run.followers.add(follower);
    this.tell(runId, follower);
    const followers = run;
    return () => {
      followers.followers.delete(follower);
      if (followers.followers.size > 0 || this.runs.get(runId) !== followers) return;
      if (followers.timer) clearTimeout(followers.timer);
      this.runs.delete(runId);
    };
  }

  /**
   * A watcher came or went: tell the run's followers after a timer, so the
   * watchers that arrive in the same burst are told as one change, and no
   * sooner than OBSERVER_COUNT_INTERVAL_MS after the last time.
   */
  private changed(runId: string): void {
    const run = this.runs.get(runId);
    if (!run || run.timer) return;
    const wait = Math.max(0, run.toldAt + OBSERVER_COUNT_INTERVAL_MS - performance.now());
    run.timer = setTimeout(() => {
      run.timer = null;
      run.toldAt = performance.now();
      for (const follower of [...run.followers]) this.tell(runId, follower);
    }, wait);
    run.timer.unref?.();
  }

  private tell(runId: string, follower: Follower): void {
    const { outlet } = follower;
    if (outlet.closed || follower.waitingForDrain) return;
    const count = this.hub.watchersEverywhere(runId);
    if (count === follower.told) return;
    if (outlet.blocked) {
      follower.waitingForDrain = true;
      outlet.whenDrained(() => {
        follower.waitingForDrain = false;
        if (this.runs.get(runId)?.followers.has(follower)) this.tell(runId, follower);
      });
      return;
    }
    follower.told = count;
    follower.send(count);
  }
}

const byHub = new WeakMap<Hub, ObserverCounts>();

/** The one ObserverCounts of a hub (its WebSocket and SSE subscriptions share it). */
export function observerCountsOf(hub: Hub): ObserverCounts {
  let counts = byHub.get(hub);
  if (!counts) byHub.set(hub, (counts = new ObserverCounts(hub)));
  return counts;
}
