import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from 'react';

/**
 * Two pages need no routing library: the path is the state, pushState moves
 * it, popstate (back/forward) brings it back.
 */
const listeners = new Set<() => void>();

// Back and forward put the reader where they were on that page (see
// useRestoredScroll): the browser's own restoration ran before the list
// had loaded its rows, so Back from a run always landed at the top.
if ('scrollRestoration' in window.history) window.history.scrollRestoration = 'manual';

export function navigate(path: string): void {
  if (path === window.location.pathname + window.location.search) return;
  keepScroll();
  window.history.pushState(null, '', path);
  window.scrollTo(0, 0);
  for (const listener of listeners) listener();
}

/** Remember in the current history entry how far down its page the reader is, before leaving it. */
function keepScroll(): void {
  const state: unknown = window.history.state;
  window.history.replaceState({ ...(typeof state === 'object' && state !== null ? state : {}), scrollY: window.scrollY }, '');
}

function keptScroll(): number | null {
  const y = (window.history.state as { scrollY?: unknown } | null)?.scrollY;
  return typeof y === 'number' && y > 0 ? y : null;
}

/**
 * How long a page may take to grow tall enough (its rows, children and panels loading) to scroll back to.
 * Generous: a busy server or machine took over 3 s to load a list, and the reader, Back at the top,
 * lost their place. Any scroll or key of theirs ends the wait at once.
 */
const RESTORE_WITHIN_MS = 10_000;
/** The reader moving the page themselves: their position wins over the kept one. */
const READER_INPUT = ['wheel', 'touchmove', 'keydown', 'mousedown'] as const;

/**
 * On a page reached by Back or Forward (or a reload), scroll to where the
 * reader was, as soon as the page is tall enough: its content arrives after
 * it mounts, so this waits for it, for a few seconds at most, and gives up
 * as soon as the reader scrolls or types.
 */
export function useRestoredScroll(): void {
  const search = useLocationPart(readSearch);
  useEffect(() => {
    const y = keptScroll();
    if (y === null) return;
    const deadline = performance.now() + RESTORE_WITHIN_MS;
    let frame = 0;
    const stop = () => {
      cancelAnimationFrame(frame);
      for (const type of READER_INPUT) window.removeEventListener(type, stop);
    };
    const step = () => {
      const most = document.documentElement.scrollHeight - window.innerHeight;
      if (most >= y || performance.now() > deadline) {
        window.scrollTo(0, Math.min(y, most));
        stop();
        return;
      }
      frame = requestAnimationFrame(step);
    };
    for (const type of READER_INPUT) window.addEventListener(type, stop, { passive: true });
    frame = requestAnimationFrame(step);
    return stop;
  }, [search]);
}

/** A part of the page's location, re-read whenever navigate/replaceQuery or back/forward moves it. */
function useLocationPart(read: () => string): string {
  const [value, setValue] = useState(read);
  useEffect(() => {
    const update = () => setValue(read());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
    // read is one of the two fixed readers below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return value;
}

const readPath = () => window.location.pathname;
const readSearch = () => window.location.search;

export function usePath(): string {
  return useLocationPart(readPath);
}

export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const handle = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    // Let the browser handle new-tab and modified clicks as usual.
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={handle} {...rest} />;
}

/**
 * The page's query string, live: a page whose state belongs in the URL (a
 * shareable, reload-proof filter) reads it here and writes it with
 * replaceQuery.
 */
export function useQuery(): URLSearchParams {
  return new URLSearchParams(useLocationPart(readSearch));
}

/** Put state in the query string without a history entry per keystroke (back leaves the page, as users expect). */
export function replaceQuery(query: URLSearchParams): void {
  moveTo(query, 'replace');
}

/** Put state in the query string as a new history entry (a step the reader goes back to, like a page of a list). */
export function pushQuery(query: URLSearchParams): void {
  moveTo(query, 'push');
}

function moveTo(query: URLSearchParams, how: 'push' | 'replace'): void {
  const search = query.toString();
  const path = `${window.location.pathname}${search ? `?${search}` : ''}`;
  if (path === window.location.pathname + window.location.search) return;
  if (how === 'push') {
    keepScroll();
    window.history.pushState(null, '', path);
  }
  else window.history.replaceState(null, '', path);
  for (const listener of listeners) listener();
}

const LIST_KEY = 'runtrail.runs-list';

/**
 * Where the runs list was last (its filters and page, `/?q=bulk&cursor=…`),
 * so a run page's "All runs" leads back to that list rather than to the
 * first page of everything. Kept per tab (sessionStorage), so a reload of
 * the run page keeps it too.
 */
export function rememberListLocation(search: string): void {
  try {
    sessionStorage.setItem(LIST_KEY, `/${search}`);
  } catch (err) {
    // Storage refused (a private window's quota): the link falls back to the whole list.
    void err;
  }
}

export function listLocation(): string {
  try {
    const path = sessionStorage.getItem(LIST_KEY);
    // Only a path of this dashboard's list, never somewhere else.
    return path !== null && (path === '/' || path.startsWith('/?')) ? path : '/';
  } catch (err) {
    void err;
    return '/';
  }
}
