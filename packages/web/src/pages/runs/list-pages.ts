/**
 * Where the runs list is among its pages, as the URL keeps it: `cursor` for
 * each of the last pages opened (the last one is this page's) and, once
 * older ones were let go, `page` (the page's number from the newest).
 *
 * The API pages only towards older runs (a cursor is the id of the last run
 * of the page before), so "Newer" needs the cursor of the page before this
 * one. Keeping one per page made the URL grow about 45 characters a page,
 * and a few hundred pages back a reload passed the server's 16 KiB header
 * limit (431). Only the last MAX_KEPT_CURSORS are kept: "Newer" steps back
 * through those; past them it leads to the newest page (the browser's Back
 * still steps back page by page: each page is its own history entry).
 */
export const CURSOR = 'cursor';
export const PAGE = 'page';
/** About 1 KiB of URL at most, however deep the reader pages; 20 steps of "Newer" before it leads to the newest page. */
export const MAX_KEPT_CURSORS = 20;

export interface ListPages {
  /** This page's number, 1 for the newest. */
  page: number;
  /** The cursors kept, oldest first; the last is this page's (none on the newest page). */
  cursors: readonly string[];
}

export function pagesFromQuery(query: URLSearchParams): ListPages {
  const cursors = query.getAll(CURSOR).slice(-MAX_KEPT_CURSORS);
  const least = cursors.length + 1;
  const written = Number(query.get(PAGE));
  // The number is only a label: one that cannot be (hand-edited, or no cursor to read the page with) is not shown.
  const page = cursors.length > 0 && Number.isSafeInteger(written) && written > least ? written : least;
  return { page, cursors };
}

/** Writes `at` into `query` (which holds the filter only). */
export function writePages(query: URLSearchParams, at: ListPages): URLSearchParams {
  const cursors = at.cursors.slice(-MAX_KEPT_CURSORS);
  for (const c of cursors) query.append(CURSOR, c);
  // Said only when the cursors no longer say it.
  if (at.page > cursors.length + 1) query.set(PAGE, String(at.page));
  return query;
}

export function olderPage(at: ListPages, next: string): ListPages {
  return { page: at.page + 1, cursors: [...at.cursors, next].slice(-MAX_KEPT_CURSORS) };
}

/** Whether the page before this one is known; if not, "Newer" leads to the newest page. */
export function knowsNewer(at: ListPages): boolean {
  // Page 2's newer page is the newest, read without a cursor; any other needs the cursor kept before this one's.
  return at.page <= 2 || at.cursors.length >= 2;
}

export function newerPage(at: ListPages): ListPages {
  if (at.cursors.length === 0 || !knowsNewer(at)) return { page: 1, cursors: [] };
  return { page: at.page - 1, cursors: at.cursors.slice(0, -1) };
}
