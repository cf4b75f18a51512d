import type { FastifyBaseLogger } from 'fastify';
import type { RunStore } from '@runtrail/store';
import { RepeatedFailureLog } from '../repeated-failure-log.js';
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
  throw new StartupError(`refusing to start with auth off: the other nodes on this database require tokens ${disagreement(marker, 'Start')}`);
}

/** How often a node with auth off on a shared database looks again whether its other nodes require tokens. */
export const AUTH_AGREEMENT_RECHECK_MS = 3_000;

/**
 * The start's check, kept up while the node runs: a node with auth off that
 * started before any node with auth on used the database found no record,
 * and served every node's runs open (and minted tokens they accept) for ever
 * after one joined. Every `everyMs` it looks for the record again. Once it is
 * there: on --insecure, the INSECURE warning, once; otherwise why, at ERROR,
 * and `stop` with that error (the node stops as it would on SIGTERM; started
 * again, it is refused at start with the same reasons). A read that fails
 * (the database away) is no reason to stop: logged as outages are, and read
 * again next time. Returns the function that stops looking.
 */
export function watchAuthAgreement(
  store: Pick<RunStore, 'findSecret'>,
  node: { address: string; insecure: boolean; log: FastifyBaseLogger },
  stop: (why: StartupError) => void,
  everyMs = AUTH_AGREEMENT_RECHECK_MS,
): () => void {
  const failures = new RepeatedFailureLog(node.log, {
    failed: `could not read whether the other nodes on this database require tokens (auth is off here); reading it again in ${everyMs / 1000} s`,
    recovered: 'reads whether the other nodes on this database require tokens again',
    level: 'warn',
  });
  let timer: NodeJS.Timeout | null = null;
  let watching = true;
  const look = async (): Promise<void> => {
    let text: string | null;
    try {
      text = await store.findSecret(AUTH_REQUIRED_SECRET);
    } catch (err) {
      // Stopped meanwhile: the store is closing, which is no outage.
      if (watching) failures.failed(err);
      return next();
    }
    failures.succeeded();
    if (!watching) return;
    if (text === null) return next();
    // There to stay (until deleted by hand): once seen, nothing more to look for.
    watching = false;
    const marker = parseMarker(text);
    if (node.insecure) return void node.log.warn(openNodeWarning(marker, node.address));
    const why = new StartupError(`stopping with auth off: the other nodes on this database now require tokens ${disagreement(marker, 'Restart')}`);
    node.log.error(why.message);
    stop(why);
  };
  // One look at a time: the next is timed from the end of the last (a slow database never stacks them up).
  const next = (): void => {
    if (!watching) return;
    timer = setTimeout(() => void look(), everyMs);
    timer.unref();
  };
  next();
  return () => {
    watching = false;
    if (timer) clearTimeout(timer);
  };
}

/** Why a node with auth off may not serve a database whose other nodes require tokens, and what to do: the start refusal's words and the stop's. */
function disagreement(marker: AuthRequired, start: 'Start' | 'Restart'): string {
  return (
    `(since ${marker.since}, first node ${marker.node}); this node would serve all their runs open and mint tokens they accept. ` +
    `${start} it with RUNTRAIL_ADMIN_TOKEN or --admin-token-file like the others, or pass --insecure to run this database open on purpose`
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
