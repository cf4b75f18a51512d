import type { RunStore } from '@runtrail/store';
import { StartupError } from '../startup-error.js';

/** The secret under which a shared database records that its nodes require tokens. */
export const AUTH_REQUIRED_SECRET = 'auth-required';

/** Who first required tokens on the database, and when: what the marker holds. */
export interface AuthRequired {
  node: string;
  since: string;
}

/**
 * Keep the nodes of one database from disagreeing about auth. Runs and tokens
 * live in the database, so a node with auth off on it serves every node's runs
 * open and mints admin tokens the nodes with auth on accept: one open node
 * opens the whole cluster. A node with auth on records, once for the database,
 * that it requires tokens; a node with auth off that finds the record refuses
 * to start, unless told --insecure (then it starts, and the marker is returned
 * for its warning). Null: auth is on, or no node required it.
 */
export async function checkAuthAgreement(
  store: RunStore,
  node: string,
  auth: { on: boolean; insecure: boolean },
  now: () => number = Date.now,
): Promise<AuthRequired | null> {
  if (auth.on) {
    await store.ensureSecret(AUTH_REQUIRED_SECRET, JSON.stringify({ node, since: new Date(now()).toISOString() } satisfies AuthRequired));
    return null;
  }
  const text = await store.findSecret(AUTH_REQUIRED_SECRET);
  if (text === null) return null;
  const marker = parseMarker(text);
  if (auth.insecure) return marker;
  throw new StartupError(
    `refusing to start with auth off: the other nodes on this database require tokens (since ${marker.since}, first node ${marker.node}); ` +
      `this node would serve all their runs open and mint tokens they accept. ` +
      `Start it with RUNTRAIL_ADMIN_TOKEN or --admin-token-file like the others, or pass --insecure to run this database open on purpose`,
  );
}

/** The warning of a node started with auth off, on --insecure, on a database whose other nodes require tokens. */
export function openNodeWarning(marker: AuthRequired, address: string): string {
  return (
    `INSECURE: auth is off on ${address}, but the other nodes on this database require tokens (since ${marker.since}, first node ${marker.node}): ` +
    `this node serves all their runs open and mints tokens they accept (--insecure)`
  );
}

function parseMarker(text: string): AuthRequired {
  try {
    const value = JSON.parse(text) as Partial<AuthRequired>;
    if (typeof value.node === 'string' && typeof value.since === 'string') return { node: value.node, since: value.since };
  } catch (err) {
    // Not JSON (written by hand, or by something else): its presence alone says tokens are required; it is shown as it is.
    void err;
  }
  return { node: 'unknown', since: 'an unknown time' };
}
