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
  };
}

/**
 * A live scroll box that follows its newest content while the reader is at
 * its end (or has not scrolled), and stays put once they scroll up, until
 * they scroll back to the end or ask to follow again. The one behaviour of
 * the run page's Console, event log and timeline.
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
  const [following, setFollowing] = useState(true);
  // Where the last scroll left the box: a scroll that lands higher than that, short of the end, is the reader's.
  const lastTop = useRef(0);

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
  const stopIfUp = () => {
    const el = ref.current;
    if (el && el.scrollTop > 0) setFollowing(false);
  };
  const handlers = {
    onScroll: () => {
      const el = ref.current;
      if (!el) return;
      const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < AT_END_PX;
      // Dragging the scroll bar has no wheel or key: a scroll up is one too.
      const up = el.scrollTop < lastTop.current - 1;
      lastTop.current = el.scrollTop;
      if (atEnd) setFollowing(true);
      else if (up) setFollowing(false);
    },
    onWheel: (e: WheelEvent) => {
      if (e.deltaY < 0) stopIfUp();
    },
    onTouchMove: stopIfUp,
    onKeyDown: (e: KeyboardEvent) => {
      if (e.key === 'ArrowUp' || e.key === 'PageUp' || e.key === 'Home') stopIfUp();
    },
  };
  return { ref, following, setFollowing, handlers };
}

function scrollToEnd(el: HTMLElement): void {
  el.scrollTop = el.scrollHeight;
}
