import { elementScroll, useVirtualizer, type Virtualizer } from '@tanstack/react-virtual';
import { useLayoutEffect, useRef } from 'react';
import { useFollowTail, type FollowTail } from './use-follow-tail.js';

/** The index of the item with this seq in items in seq order, or -1. */
function indexOfSeq(items: readonly { seq: number }[], seq: number): number {
  let lo = 0;
  let hi = items.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = items[mid]!.seq;
    if (at === seq) return mid;
    if (at < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Where the virtualiser put a drawn row: its index, its offset, and the ref that measures its height. */
export interface VirtualRowPlace {
  index: number;
  start: number;
  measure: (node: Element | null) => void;
}

/** The attributes that put a drawn row at its place (rows of wrapping text: each is measured). */
export function virtualRowProps({ index, start, measure }: VirtualRowPlace) {
  return {
    ref: measure,
    'data-index': index,
    style: { position: 'absolute', top: 0, left: 0, right: 0, transform: `translateY(${start}px)` },
  } as const;
}

export interface VirtualTail {
  rows: Virtualizer<HTMLDivElement, Element>;
  tail: FollowTail<HTMLDivElement>;
  /** The scroll box's onScroll, in place of `tail.handlers.onScroll`: it also notes the row the reader is at. */
  onScroll(): void;
}

/**
 * A live list in seq order (the event log, the Console), virtualised: only
 * the rows in and near view are rendered, each measured as drawn, so a row
 * that wraps or opens is as tall as it is. It follows the newest row as
 * `useFollowTail` does; `content` changes when there is something new.
 *
 * Not following, the rows in view stay in view. The page holds a long run's
 * latest events, so each new one pushes the oldest out at the top; at a
 * fixed scroll offset the rows a reader scrolled up to slid away under
 * them. The first row in view (by seq) and its offset are kept, and the box
 * scrolled back to them after each change.
 */
export function useVirtualTail(
  shown: readonly { seq: number }[],
  /** `padding`: px above the first row and below the last, inside the scroll box's height. */
  options: { content: unknown; estimateSize: number; overscan: number; padding?: number },
): VirtualTail {
  // The virtualiser before the follow hook: its layout effect, which gives it
  // the scroll box, runs first, so a list mounted with its rows already held
  // scrolls to its last row at once, not before the virtualiser has a box to scroll.
  const rows = useVirtualizer({
    count: shown.length,
    getScrollElement: () => tail.ref.current,
    estimateSize: () => options.estimateSize,
    // Sizes belong to seqs, not positions: a row keeps its measured height when a filter or a dropped row moves it.
    getItemKey: (index) => shown[index]!.seq,
    overscan: options.overscan,
    paddingStart: options.padding ?? 0,
    paddingEnd: options.padding ?? 0,
    // Its own scrolls (to a row, after it measures rows) are the page's, not the reader's scroll away from the newest.
    scrollToFn: (offset, how, instance) => tail.ownScroll(() => elementScroll(offset, how, instance)),
  });
  // Rows not yet measured have no height to scroll to: the virtualiser scrolls to the last one.
  const tail = useFollowTail<HTMLDivElement>(options.content, { toEnd: () => shown.length > 0 && rows.scrollToIndex(shown.length - 1, { align: 'end' }) });
  const { following, ref: scroller, ownScroll } = tail;

  const anchor = useRef<{ seq: number; offset: number } | null>(null);
  useLayoutEffect(() => {
    const el = scroller.current;
    const kept = anchor.current;
    if (following || !el || !kept) return;
    const index = indexOfSeq(shown, kept.seq);
    const item = index >= 0 ? rows.measurementsCache[index] : undefined;
    if (item && Math.abs(el.scrollTop - (item.start - kept.offset)) >= 1) ownScroll(() => (el.scrollTop = item.start - kept.offset));
  }, [shown, following, rows, scroller, ownScroll]);

  const onScroll = () => {
    tail.handlers.onScroll();
    const el = scroller.current;
    const item = el ? rows.getVirtualItemForOffset(el.scrollTop) : undefined;
    anchor.current = el && item && shown[item.index] ? { seq: shown[item.index]!.seq, offset: item.start - el.scrollTop } : null;
  };
  return { rows, tail, onScroll };
}
