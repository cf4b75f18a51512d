/**
 * The dashboard's token, kept in session storage: it lives as long as the
 * tab, is sent on every request and stream, and is never written to a
 * cookie (so no other site's page can make the browser send it).
 */
const KEY = 'runtrail.token';

/**
 * A shared link `/runs/:id?token=…` brings a run token: keep it for this tab
 * and take it out of the address bar at once, so it is not left in the
 * history, a bookmark or a screenshot.
 */
export function takeTokenFromUrl(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get('token');
  if (token === null) return;
  if (token !== '') window.sessionStorage.setItem(KEY, token);
  url.searchParams.delete('token');
  window.history.replaceState(window.history.state, '', `${url.pathname}${url.search}${url.hash}`);
}

export function sessionToken(): string | undefined {
  return window.sessionStorage.getItem(KEY) ?? undefined;
}

/** Keep a token and start over with it (every watcher and request picks it up). */
export function logIn(token: string): void {
  window.sessionStorage.setItem(KEY, token);
  window.location.reload();
}

export function logOut(): void {
  window.sessionStorage.removeItem(KEY);
  window.location.assign('/');
}
