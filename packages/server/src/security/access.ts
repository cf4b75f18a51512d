import { RuntrailError, type RouteName, type TokenScope } from '@runtrail/protocol';
import type { RunStore } from '@runtrail/store';
import type { Principal } from './tokens.js';

/**
 * What a route needs:
 * - `open`: nothing (health checks);
 * - `read`: any scoped token (viewer and up);
 * - `readRun`: read access to the run in `:id` (a run token of that run or
 *   of an ancestor also has it);
 * - `readChildren`: list runs: any scoped token; a run token lists the runs
 *   under a run it covers (`parentId` / `parentIds` of such runs only);
 * - `writeRun`: add to the run in `:id` (events, artifacts): a producer or
 *   admin token, or a write run token of that run or of an ancestor;
 * - `produce`: a producer or admin token;
 * - `admin`: the admin scope.
 * Every route of the table is listed, so a new route does not compile until
 * someone decides who may call it.
 */
export type Access = 'open' | 'read' | 'readRun' | 'readChildren' | 'writeRun' | 'produce' | 'admin';

export const routeAccess = {
  health: 'open',
  ready: 'open',
  metrics: 'read',
  createRun: 'produce',
  listRuns: 'readChildren',
  countRuns: 'readChildren',
  getRun: 'readRun',
  deleteRun: 'admin',
  appendEvents: 'writeRun',
  readEvents: 'readRun',
  finishRun: 'produce',
  heartbeat: 'produce',
  cancelRun: 'produce',
  retryRun: 'produce',
  streamRun: 'readRun',
  stream: 'readRun',
  listHandlers: 'read',
  // The API's description is public: it holds no run and no token.
  openapi: 'open',
  apiDocs: 'open',
  whoami: 'open',
  // It says nothing the Content-Security-Policy header of every answer, a refusal included, does not.
  dashboardConfig: 'open',
  createToken: 'admin',
  listTokens: 'admin',
  // The handler narrows a producer to the run tokens it minted (TokenService.revoke): it can take back
  // a link it handed out without asking the admin, and touches nothing of anyone else's.
  revokeToken: 'produce',
  createRunToken: 'produce',
  putArtifact: 'writeRun',
  listArtifacts: 'readRun',
  getArtifact: 'readRun',
  runLog: 'readRun',
  exportRun: 'readRun',
  // An import writes a whole run as it was, under its own id and status.
  importRun: 'admin',
} as const satisfies Record<RouteName, Access>;

const SCOPE_ALLOWS: Record<TokenScope, ReadonlySet<Access>> = {
  admin: new Set(['open', 'read', 'readRun', 'readChildren', 'writeRun', 'produce', 'admin']),
  producer: new Set(['open', 'read', 'readRun', 'readChildren', 'writeRun', 'produce']),
  viewer: new Set(['open', 'read', 'readRun', 'readChildren']),
};

/** How far up the parent chain a run token's reach is looked for. */
const MAX_ANCESTRY = 32;

/**
 * Throws `forbidden` unless the principal may do `access` (on run `runId`
 * for readRun and writeRun; for readChildren, listing the runs under
 * `parents`, the list's parentId or parentIds).
 */
export async function authorize(store: RunStore, principal: Principal, access: Access, runId?: string, parents: readonly string[] = []): Promise<void> {
  if (access === 'open' || principal.kind === 'open') return;
  if (principal.kind === 'scoped') {
    if (SCOPE_ALLOWS[principal.scope].has(access)) return;
    throw new RuntrailError('forbidden', `a ${principal.scope} token cannot do this; it needs the ${neededScope(access)} scope`);
  }
  if (access === 'readChildren') {
    if (parents.length > 0 && (await everyCovered(store, principal.runId, parents))) return;
    throw new RuntrailError('forbidden', `a run token lists only the runs under its run: ask with parentId=${principal.runId} (or a run under it)`);
  }
  const reaches = access === 'readRun' || (access === 'writeRun' && principal.write);
  if (reaches && runId !== undefined && (await runTokenCovers(store, principal.runId, runId))) return;
  throw new RuntrailError('forbidden', runTokenRefusal(access, principal.write));
}

/**
 * A run token adds a run's work, never its lifecycle: `run.*` events (its
 * start, a cancel request, a stall, its end) belong to the run's owner and
 * the server, as finish and cancel do, so a write run token sending one is
 * refused (403) rather than ending or cancelling the run by the back door.
 * Events come in one batch: one such event refuses the whole batch, and
 * nothing of it is stored.
 */
export function authorizeEvents(principal: Principal | undefined, events: readonly { type: string }[]): void {
  if (principal?.kind !== 'run') return;
  const at = events.findIndex((e) => e.type.startsWith('run.'));
  if (at < 0) return;
  throw new RuntrailError(
    'forbidden',
    `events[${at}].type: a run token cannot send ${events[at]!.type}: a run's lifecycle (start, cancel, stall, end) belongs to its owner, who ends it with POST /runs/:id/finish`,
    { path: `events[${at}].type` },
  );
}

/** Whether `runId` is `tokenRunId` or one of its descendants. An unknown run is not covered (a run token must not learn which ids exist). */
async function runTokenCovers(store: RunStore, tokenRunId: string, runId: string): Promise<boolean> {
  let id: string | null = runId;
  for (let depth = 0; id !== null && depth <= MAX_ANCESTRY; depth++) {
    if (id === tokenRunId) return true;
    const run: { parentId: string | null } | null = await store.getRun(id);
    id = run?.parentId ?? null;
  }
  return false;
}

async function everyCovered(store: RunStore, tokenRunId: string, runIds: readonly string[]): Promise<boolean> {
  for (const id of runIds) if (!(await runTokenCovers(store, tokenRunId, id))) return false;
  return true;
}

/** The parents a runs list or runs stream is narrowed to: its parentId, or each of its parentIds. */
export function listedParents(filter: { parentId?: unknown; parentIds?: unknown }): string[] {
  if (typeof filter.parentId === 'string' && filter.parentId !== '') return [filter.parentId];
  if (typeof filter.parentIds === 'string' && filter.parentIds !== '') return filter.parentIds.split(',');
  return [];
}

function neededScope(access: Access): TokenScope {
  return access === 'admin' ? 'admin' : access === 'produce' || access === 'writeRun' ? 'producer' : 'viewer';
}

/** Why a run token may not do `access` here. */
function runTokenRefusal(access: Access, write: boolean): string {
  if (access === 'readRun') return "a run token reads only its own run and that run's children";
  if (access === 'writeRun') {
    return write
      ? "a run token adds events and artifacts only to its own run and that run's children"
      : 'this run token only reads; one minted with write: true also adds events and artifacts to its run';
  }
  return write ? 'a run token can only read its run and add events and artifacts to it' : 'a run token can only read and watch its run';
}
