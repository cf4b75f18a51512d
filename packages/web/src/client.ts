import { RuntrailClient } from '@runtrail/client';
import { sessionToken, takeTokenFromUrl } from './session.js';

// Before anything reads the token: a shared link may have brought one.
takeTokenFromUrl();

/** The dashboard is served by the server it shows, so the API is at the page's own origin. */
export const serverUrl = window.location.origin;
/** This tab's token, if it logged in or opened a shared link; fixed for the page's life (logging in reloads). */
export const token = sessionToken();
export const client = new RuntrailClient({ url: serverUrl, token });

/**
 * The live pages render at most this often: a busy run sends tens of
 * messages a second, and rendering each one kept the browser's main thread
 * busy nearly the whole run (bench/dashboard-cpu.mjs); five renders a second
 * still reads as live.
 */
export const LIVE_RENDER_MS = 200;

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
