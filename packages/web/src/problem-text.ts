import { RuntrailError } from '@runtrail/protocol';
import { messageOf } from './client.js';

/** How browsers word a request that reached no server (Chromium, Firefox, Safari; Node's fetch). */
const NO_ANSWER = /failed to fetch|fetch failed|networkerror|load failed|network request failed|ECONNREFUSED/i;

export const RETRYING = 'retrying automatically…';
export const TRY_AGAIN = 'try again in a moment.';

/** Whether an error means no server answered at all (down, restarting, network gone). */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof TypeError) return true;
  return err instanceof RuntrailError && err.code === 'unavailable' && NO_ANSWER.test(err.message);
}

/**
 * A problem as a person should read it: never the browser's raw "Failed to
 * fetch". `doing` says what could not be done ("could not list runs").
 * `then` says what happens next: the live lists and pollers retry by
 * themselves (RETRYING); a one-off request says how to try again.
 */
export function problemText(err: unknown, doing: string, then = RETRYING): string {
  if (isUnreachable(err)) return `The server is unreachable (${window.location.host} does not answer); ${then}`;
  // The server's own words ("token revoked") do not say what the reader can do about it.
  if (err instanceof RuntrailError && err.code === 'unauthorized') return `${capitalized(doing)}: the token this tab had is not valid any more (expired or revoked).`;
  if (err instanceof RuntrailError && (err.code === 'unavailable' || err.code === 'internal' || err.code === 'rate_limited')) {
    return `${capitalized(doing)}: ${err.message}; ${then}`;
  }
  return `${capitalized(doing)}: ${messageOf(err)}`;
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
