import { RuntrailClient } from '@runtrail/client';

/** The dashboard is served by the server it shows, so the API is at the page's own origin. */
export const serverUrl = window.location.origin;
export const client = new RuntrailClient({ url: serverUrl });

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
