import { useLayoutEffect, useRef, useState, type KeyboardEvent, type RefObject, type WheelEvent } from 'react';

/** Closer to the end than this (px) is at the end: a reader who scrolls back down there is following again. */
const AT_END_PX = 8;

export interface FollowTail<T extends HTMLElement> {
  ref: RefObject<T | null>;
  /** Whether the box keeps its newest content in view (as `tail -f`). */
  following: boolean;
  setFollowing(on: boolean): void;
  /** For the scroll box: they tell a reader's scroll up from the box's own scroll to the end. */
  handlers: {
    onScroll(): void;
    onWheel(e: WheelEvent): void;
    onTouchMove(): void;
    onKeyDown(e: KeyboardEvent): void;
    onPointerDown(): void;
  };
}

/**
 * A live scroll box that follows its newest content while the reader is at
 * its end (or has not scrolled), and stays put once they scroll up, until
 * they scroll back to the end or ask to follow again. The one behaviour of
 * the run page's Console, event log and timeline. Only the reader stops it
 * (a wheel, a swipe, a key, or a pointer held on the box); a scroll the box
 * makes by itself while following is put back at the end.
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
  // Where the last scroll left the box: a drag that lands higher than that, short of the end, is the reader's.
  const lastTop = useRef(0);
  // A pointer or a key held down on the box (its scroll bar, a text selection, Shift+Tab to a row above):
  // only then is a scroll up with no wheel the reader's.
  const held = useRef(false);
  const hold = (until: 'pointerup' | 'keyup') => {
    held.current = true;
    // Released anywhere: a drag of the scroll bar often ends outside the box.
    const release = () => {
      held.current = false;
      window.removeEventListener(until, release);
      window.removeEventListener('blur', release);
    };
    window.addEventListener(until, release);
    window.addEventListener('blur', release);
  };

  useLayoutEffect(() => {
    const el = ref.current;
    if (!following || !enabled || !el) return;
    toEnd(el);
    lastTop.current = el.scrollTop;
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
    if (el && (el.scrollTop > 0 || lastTop.current > 0)) setFollowing(false);
  };
  const handlers = {
    onScroll: () => {
      const el = ref.current;
      if (!el) return;
      const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < AT_END_PX;
      const up = el.scrollTop < lastTop.current - 1;
      lastTop.current = el.scrollTop;
      if (atEnd) setFollowing(true);
      // Dragging the scroll bar or moving the focus up: the reader's, while they hold the pointer or the key.
      else if (up && held.current) setFollowing(false);
      // Any other scroll away from the end is the box's own: a virtualised list
      // that re-measures its rows after it mounts (or is first given its
      // scroll box) writes a scroll position of its own, and content that
      // grows above the end moves it too. Reading that as the reader's scroll
      // up left a log opened on a long run at its oldest rows, no longer
      // following; while following, the box goes back to its end instead.
      else if (followingNow.current && enabled) {
        toEnd(el);
        lastTop.current = el.scrollTop;
      }
    },
    onWheel: (e: WheelEvent) => {
      if (e.deltaY < 0) stopIfUp();
    },
    onTouchMove: stopIfUp,
    onKeyDown: (e: KeyboardEvent) => {
      hold('keyup');
      if (e.key === 'ArrowUp' || e.key === 'PageUp' || e.key === 'Home') stopIfUp();
    },
    onPointerDown: () => hold('pointerup'),
  };
  return { ref, following, setFollowing, handlers };
}

function scrollToEnd(el: HTMLElement): void {
  el.scrollTop = el.scrollHeight;
}
