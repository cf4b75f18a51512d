import { useCallback, useLayoutEffect, useRef, useState, type KeyboardEvent, type RefObject, type WheelEvent } from 'react';

/** Closer to the end than this (px) is at the end: a reader who scrolls back down there is following again. */
const AT_END_PX = 8;

export interface FollowTail<T extends HTMLElement> {
  ref: RefObject<T | null>;
  /** Whether the box keeps its newest content in view (as `tail -f`). */
  following: boolean;
  setFollowing(on: boolean): void;
  /**
   * Runs a scroll the page makes by itself (a virtualiser's own write, a
   * kept position put back), so that the scroll event it causes is not
   * taken for the reader's.
   */
  ownScroll(write: () => void): void;
  /** For the scroll box: they tell a reader's scroll up from the box's own scroll to the end. */
  handlers: {
    onScroll(): void;
    onWheel(e: WheelEvent): void;
    onTouchMove(): void;
    onKeyDown(e: KeyboardEvent): void;
  };
  /** For the scroll box: while it follows, the browser does not move it to keep what was in view in view (see below). */
  style: { overflowAnchor: 'none' | 'auto' };
}

function atEndOf(el: HTMLElement): boolean {
  return el.scrollHeight - el.scrollTop - el.clientHeight < AT_END_PX;
}

/**
 * A live scroll box that follows its newest content while the reader is at
 * its end (or has not scrolled), and stays put once they scroll away from
 * it, until they scroll back to the end or ask to follow again. The one
 * behaviour of the run page's Console, event log and timeline, as a
 * terminal or a CI log viewer does it.
 *
 * Any scroll up that the page did not make is the reader's: a wheel, a
 * swipe, a key, the scroll bar, a text selection dragged past the top, and
 * also the browser's find in page, a link's fragment or a screen reader
 * moving to a line above. The page's own scrolls go through `toEnd` or
 * `ownScroll`, which note where they left the box. While the box follows,
 * the browser's scroll anchoring is off (`style`): with it, a page that
 * drops its oldest lines at the top moved the box up by itself, which
 * could not be told from a reader's scroll; following, the box goes to its
 * end after every change anyway. Not following, anchoring keeps the lines
 * the reader scrolled to in view.
 *
 * `content` changes when there is something new to show; `toEnd` scrolls to
 * it (a virtualised list scrolls to its last row, not to a height it has not
 * measured). `enabled` false leaves the box where the reader put it (an
 * ended run's timeline opens at its start).
 */
export function useFollowTail<T extends HTMLElement>(
  content: unknown,
  options: { enabled?: boolean; toEnd?: (el: T) => void } = {},
): FollowTail<T> {
  const { enabled = true, toEnd = scrollToEnd } = options;
  const ref = useRef<T>(null);
  const [following, setFollowingState] = useState(true);
  // What the state will be once React renders: a scroll event can come between a wheel up and that render.
  const followingNow = useRef(true);
  const setFollowing = (on: boolean) => {
    followingNow.current = on;
    setFollowingState(on);
  };
  // Where the box was last seen: by a scroll event, or right after the page scrolled it itself.
  const seenTop = useRef(0);
  const ownScroll = useCallback((write: () => void) => {
    write();
    if (ref.current) seenTop.current = ref.current.scrollTop;
  }, []);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!following || !enabled || !el) return;
    // The reader scrolled up (find in page, say) and new content came before
    // the scroll event did: that scroll is theirs to keep, not to undo.
    if (el.scrollTop < seenTop.current - 1 && !atEndOf(el)) {
      setFollowing(false);
      return;
    }
    ownScroll(() => toEnd(el));
    // toEnd is a fresh closure each render; what it scrolls to changes with `content`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [following, enabled, content]);

  // A wheel, a swipe or a key says "up" before the scroll position does, so
  // new content arriving in between cannot pull the reader back down. Only a
  // box with something above to scroll to: otherwise the page scrolls, not it.
  // Where the last scroll event left it counts too: the browser may have
  // scrolled a wheel's way already when its (passive) handler runs.
  const stopIfUp = () => {
    const el = ref.current;
    if (el && (el.scrollTop > 0 || seenTop.current > 0)) setFollowing(false);
  };
  const handlers = {
    onScroll: () => {
      const el = ref.current;
      if (!el) return;
      const up = el.scrollTop < seenTop.current - 1;
      seenTop.current = el.scrollTop;
      if (atEndOf(el)) setFollowing(true);
      // Up, and not where the page's own last scroll left it: the reader's, however they did it.
      else if (up) setFollowing(false);
      // Down but short of the end while following (a box that grew between
      // the page's scroll and this event): on to the end.
      else if (followingNow.current && enabled) ownScroll(() => toEnd(el));
    },
    onWheel: (e: WheelEvent) => {
      if (e.deltaY < 0) stopIfUp();
    },
    onTouchMove: stopIfUp,
    onKeyDown: (e: KeyboardEvent) => {
      if (e.key === 'ArrowUp' || e.key === 'PageUp' || e.key === 'Home') stopIfUp();
    },
  };
  return { ref, following, setFollowing, ownScroll, handlers, style: { overflowAnchor: following && enabled ? 'none' : 'auto' } };
}

function scrollToEnd(el: HTMLElement): void {
  el.scrollTop = el.scrollHeight;
}
