import type {
  Artifact,
  EventInput,
  ListRunsQuery,
  ListRunsResponse,
  Owner,
  Run,
  RunEvent,
  RunCounts,
  RunError,
  RunsFilter,
  RunStatus,
  TokenScope,
} from '@runtrail/protocol';
import type { EventText, EventTextPage, JoinedEventTexts } from './event-text.js';

/**
 * The one persistence interface of runtrail. Adapters (SQLite now, others
 * later) implement it and must pass `runStoreConformance`.
 *
 * Invariants every adapter keeps:
 * - seq is 1, 2, 3 … per run, contiguous, assigned inside the append
 *   transaction; an event id seen before maps to its original seq when the
 *   event is the same (type, data as a JSON value, and ts if the retry gives
 *   one), and is refused with `event_id_conflict` naming the id otherwise.
 * - the run row (seq, snapshot, status, lease) changes in the SAME
 *   transaction as the events, so a reader never sees one without the other.
 * - at most one terminal event per run, enforced by the database.
 * - a failed call changes nothing.
 */
/** How far one page (of events, of runs) may go besides its count. */
export interface ReadPageOptions {
  /**
   * Stop before the event whose stored text, or the run whose input,
   * output and error, would take the page past this many bytes (the first
   * is always taken, however large): a page of 5,000 events of 1 MiB each
   * was 5 GB to hold at once, more than a string can be, and the read
   * failed; a list of 200 runs with 1 MB inputs, 200 MB. A page cut short
   * is one the reader asks again after (a list's nextCursor says so).
   */
  maxBytes?: number;
}

export interface RunStore {
  readonly kind: string;

  createRun(record: NewRunRecord): Promise<{ run: Run; created: boolean }>;
  getRun(id: string): Promise<Run | null>;
  listRuns(query: ListRunsQuery, options?: ReadPageOptions): Promise<ListRunsResponse>;
  /** Delete an ended run with no run under it: its events, artifacts records, checkpoint and run tokens' records. */
  deleteRun(id: string): Promise<void>;

  append(runId: string, events: EventInput[], options: AppendOptions): Promise<AppendResult>;
  readEvents(runId: string, after: number, limit: number): Promise<RunEvent[]>;
  /**
   * The same page as readEvents, as each event's JSON text (see EventText):
   * what streams send, read without parsing a single event's data.
   */
  readEventTexts(runId: string, after: number, limit: number, options?: ReadPageOptions): Promise<EventText[]>;
  /**
   * The same page as readEventTexts, saying whether `maxBytes` cut it short:
   * what a reader that follows the log (a stream's catch-up, another node's
   * appends) reads, since for it a short page otherwise means "at the end".
   */
  readEventTextPage(runId: string, after: number, limit: number, options?: ReadPageOptions): Promise<EventTextPage>;
  /**
   * The same page again, its texts joined with commas into one buffer (the
   * inside of a JSON array): what a catch-up sends as one frame, made
   * without a JavaScript object or string per event. Only adapters that join
   * in the database have it (SQLite); streams read texts one by one otherwise.
   * `compact`: each text without its runId (compactEventJson), for the
   * frames of a compact subscription. `maxBytes` bounds it as ReadPageOptions
   * does, and its `cut` says so.
   */
  readJoinedEventTexts?(runId: string, after: number, limit: number, options?: { compact?: boolean } & ReadPageOptions): Promise<JoinedEventTexts>;

  heartbeat(runId: string, options: { now: number; owner?: Owner | undefined }): Promise<Run>;
  /**
   * Atomically move up to `limit` queued runs of these handler names to
   * running under `owner`, oldest first; at most `perName.get(name)` of a
   * name in `perName` (a handler's free slots), so that runs of a saturated
   * handler never hold back the others.
   */
  claimQueued(options: ClaimOptions): Promise<Run[]>;
  /** Running runs that need the reaper's attention at `now`. */
  findDue(now: number, limit: number): Promise<DueRuns>;
  /**
   * The distinct handler names of queued runs (`execute`), sorted, at most
   * `limit`: what the reaper checks some live node still defines.
   */
  queuedHandlerNames(limit: number): Promise<string[]>;
  /** Non-terminal runs held by an owner on `node` (for recovery after a restart). */
  findOwnedBy(node: string, kind: Owner['kind']): Promise<Run[]>;
  /**
   * How many runs match a filter (the list's, without its cursor), in each
   * status (every status present, 0 when none) and stalled now: the runs
   * list's totals over every page, and with `{}` the runtrail_runs gauge.
   */
  countRuns(filter: RunsFilter): Promise<RunCounts>;

  /**
   * Whether the store can take writes now, and if not, why (one sentence per
   * reason, for GET /readyz and the log). Answers within tens of ms: it never
   * waits out a lock. A store that cannot write answers writes with
   * `unavailable` (503) rather than acknowledging what it cannot keep.
   */
  readiness(): Promise<StoreReadiness>;

  /**
   * Tokens live in the store, hashed, so every node on a shared database
   * knows the same tokens and the same revocations (issue 15).
   */
  createToken(record: TokenRecord): Promise<void>;
  /** The token whose secret hashes to `hash`, revoked or not; null if none. */
  findTokenByHash(hash: string): Promise<TokenRecord | null>;
  /** The token with this id, revoked or not; null if none (a run token names the token that minted it by id). */
  findTokenById(id: string): Promise<TokenRecord | null>;
  /** Every token, newest first. */
  listTokens(): Promise<TokenRecord[]>;
  /**
   * Mark a token revoked at `now` (once: a second revoke keeps the first time); null if there is no such token.
   * A shared store tells every node's feed (AppendFeed.onTokenRevoked) once it is committed.
   */
  revokeToken(id: string, now: number): Promise<TokenRecord | null>;
  /**
   * Record a minted run token (a signed token: its secret is never stored),
   * so it can be revoked by id. Drops the records of run tokens expired
   * before `record.createdAt`: their signature refuses them already.
   * `maxLive`: false, and nothing recorded, when the run already has that
   * many live run tokens (unexpired at `record.createdAt`, unrevoked);
   * counted and recorded atomically, so minters racing on one run, on any
   * node, never pass it.
   */
  createRunToken(record: RunTokenRecord, maxLive?: number): Promise<boolean>;
  /** The run token with this id, revoked or not; null if none (never recorded, or expired and dropped). */
  findRunTokenById(id: string): Promise<RunTokenRecord | null>;
  /** As revokeToken, for a run token. */
  revokeRunToken(id: string, now: number): Promise<RunTokenRecord | null>;
  /**
   * The secret stored under `name`; if there is none yet, `candidate` is
   * stored and returned. Nodes racing to create it all get the one that won.
   */
  ensureSecret(name: string, candidate: string): Promise<string>;
  /** The secret stored under `name`, or null if none is: a read that, unlike ensureSecret, never stores one. */
  findSecret(name: string): Promise<string | null>;
  /**
   * The executor registry: `node` executes runs of these handler names
   * (replacing what it announced before), heard at `now`, and counts as
   * live until `liveUntil` unless it announces again. The announcer says how
   * long, so nodes that announce at different intervals judge each other
   * right. A node asked for a run of a handler it lacks can so tell whether
   * a live node has it.
   */
  announceHandlers(announcement: HandlersAnnouncement): Promise<void>;
  /** The last announcement of every node still live at `now`, by node name. */
  nodeHandlers(now: number): Promise<NodeHandlers[]>;
  /** Take `node` out of the registry: it no longer executes runs (it shut down). */
  forgetHandlers(node: string): Promise<void>;
  /**
   * Record an artifact whose content is already in the blob store, and
   * append its `artifact` event, in ONE transaction: a watcher sees the event
   * only once the record is there, and a refused put writes neither.
   * Refuses (writing nothing) when the run ended (`run_already_terminal`),
   * when the name holds different content and `replace` is false
   * (`artifact_conflict`), and when the run's artifacts would exceed
   * `maxRunBytes` (`payload_too_large`). The same name with the same sha256
   * is `unchanged`: no new record, no event.
   */
  putArtifact(input: PutArtifactInput): Promise<PutArtifactResult>;
  /** A run's artifacts in ordinal order; run_not_found if there is no such run. */
  listArtifacts(runId: string): Promise<Artifact[]>;
  getArtifact(runId: string, name: string): Promise<Artifact | null>;
  /** Which of these hashes some artifact record still refers to (blobs not listed may be deleted). */
  blobsInUse(sha256s: string[]): Promise<Set<string>>;
  /**
   * Load an exported run as it was: the run, its events with their seqs, ts
   * and ids, and its artifact records, in one transaction. The snapshot is
   * folded from the events. `run_already_exists` if the id is taken.
   */
  importRun(bundle: RunBundle): Promise<Run>;
  /**
   * Load several exported runs (a run and every run under it) in ONE
   * transaction, in the order given, parents before their children: all of
   * them or, on any refusal, none. `run_already_exists` names every id
   * already taken (details.runIds); a parent neither earlier in the list
   * nor stored here is `invalid_request` naming the run.
   */
  importRuns(bundles: RunBundle[]): Promise<Run[]>;

  close(): Promise<void>;
}

/** The names of RunStore's methods: what a wrapper of the store (the server's error counter) calls operations. */
export type RunStoreOperation = {
  [K in keyof RunStore]-?: NonNullable<RunStore[K]> extends (...args: never[]) => unknown ? K : never;
}[keyof RunStore];

/**
 * Every RunStore method once. Typed as a Record of them, so the compiler
 * holds it to the interface: a method added there and not here (or left
 * here after it went) does not build, and the list never drifts.
 */
const operations: Record<RunStoreOperation, null> = {
  createRun: null,
  getRun: null,
  listRuns: null,
  deleteRun: null,
  append: null,
  readEvents: null,
  readEventTexts: null,
  readEventTextPage: null,
  readJoinedEventTexts: null,
  heartbeat: null,
  claimQueued: null,
  findDue: null,
  queuedHandlerNames: null,
  findOwnedBy: null,
  countRuns: null,
  readiness: null,
  createToken: null,
  findTokenByHash: null,
  findTokenById: null,
  listTokens: null,
  revokeToken: null,
  createRunToken: null,
  findRunTokenById: null,
  revokeRunToken: null,
  ensureSecret: null,
  findSecret: null,
  announceHandlers: null,
  nodeHandlers: null,
  forgetHandlers: null,
  putArtifact: null,
  listArtifacts: null,
  getArtifact: null,
  blobsInUse: null,
  importRun: null,
  importRuns: null,
  close: null,
};
export const RUN_STORE_OPERATIONS: readonly RunStoreOperation[] = Object.keys(operations) as RunStoreOperation[];

/**
 * What a node's cluster parts do with a shared store, each counted under a
 * name of its own rather than with the requests' calls: measuring the
 * database clock (`databaseNow`), telling other nodes this node's watcher
 * counts (`announceWatchers`), and reading other nodes' appends for this
 * node's watchers (`fanoutRead`: the remote fan-out's getRun and
 * readEventTextPage). Typed against SharedRunStore where a name is its method.
 */
const clusterOperations = {
  databaseNow: null,
  announceWatchers: null,
  fanoutRead: null,
} satisfies Partial<Record<keyof SharedRunStore, null>> & Record<string, null>;
export type ClusterStoreOperation = keyof typeof clusterOperations;
export const CLUSTER_STORE_OPERATIONS: readonly ClusterStoreOperation[] = Object.keys(clusterOperations) as ClusterStoreOperation[];
/** Every operation name runtrail_store_errors_total counts under. */
export type StoreOperation = RunStoreOperation | ClusterStoreOperation;

/** What a node tells the executor registry (RunStore.announceHandlers). */
export interface HandlersAnnouncement {
  node: string;
  handlers: string[];
  now: number;
  liveUntil: number;
  /**
   * The announcing process: the id its executor owns runs under, and the
   * URL it answers at. A process starting under the same node name asks
   * that URL whether this incarnation still lives before it ends the runs
   * it holds as a dead predecessor's.
   */
  incarnation: string | null;
  url: string | null;
  /** Its executor's slots as they are now; absent or null: not told (kept as null). */
  slots?: NodeSlots | null;
}

/**
 * A node's executor slots, as it announces them with its handlers: why its
 * queued runs wait when a node that defines their handler lives.
 */
export interface NodeSlots {
  /** The executor's overall concurrency: runs of any of its handlers at once. */
  concurrency: number;
  /** Runs it executes now. */
  running: number;
  /** The handlers defined with a concurrency of their own: that limit. */
  handlerConcurrency: Record<string, number>;
  /** Runs of each handler it executes now; a handler with none is left out. */
  runningByHandler: Record<string, number>;
}

/** One node's announcement in the executor registry (RunStore.announceHandlers). */
export interface NodeHandlers {
  node: string;
  /** Sorted. */
  handlers: string[];
  heardAt: number;
  liveUntil: number;
  incarnation: string | null;
  url: string | null;
  /** Null: the node announced none (a node of an older version). */
  slots: NodeSlots | null;
}

export interface StoreReadiness {
  ready: boolean;
  reasons: string[];
}

export interface PutArtifactInput {
  runId: string;
  name: string;
  contentType: string;
  size: number;
  sha256: string;
  metadata: unknown;
  now: number;
  replace: boolean;
  maxRunBytes: number;
}

export interface PutArtifactResult {
  artifact: Artifact;
  outcome: 'created' | 'replaced' | 'unchanged';
  /** The append of the `artifact` event (null when unchanged). */
  append: AppendResult | null;
  /** The sha256 a replace displaced (its blob may now be unreferenced). */
  displaced: string | null;
}

/** A run as an export holds it. */
export interface RunBundle {
  run: Run;
  events: RunEvent[];
  artifacts: Artifact[];
}

export interface NewRunRecord {
  id: string;
  name: string;
  now: number;
  input?: unknown;
  labels?: Record<string, string> | undefined;
  parentId?: string | undefined;
  execute?: boolean | undefined;
  owner?: Owner | undefined;
  leaseTtlMs: number;
  timeoutMs?: number | undefined;
  stallTimeoutMs?: number | undefined;
  failOnStall?: boolean | undefined;
  retryOf?: string | undefined;
  attempt?: number | undefined;
  idempotencyKey?: string | undefined;
}

export interface TokenRecord {
  id: string;
  name: string;
  scope: TokenScope;
  /** SHA-256 of the token, hex. The token itself is never stored. */
  hash: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

/** A minted run token as the store keeps it: what it is for, never the token. */
export interface RunTokenRecord {
  id: string;
  runId: string;
  write: boolean;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  /** Id of the scoped token that minted it, which may revoke it; null: the admin token, the executor or an open server did, or it was recorded before minters were. */
  mintedBy: string | null;
}

export interface AppendOptions {
  /** Server time; events without `ts` get it, and the lease is renewed from it. */
  now: number;
  /** Renew the lease as this owner (an append is a heartbeat). */
  owner?: Owner | undefined;
  /**
   * Whether the append renews the lease (default true). Events the server
   * writes itself (run.stalled, run.cancel_requested) pass false: they say
   * nothing about the owner being alive, and must not keep an orphan running.
   */
  renewLease?: boolean | undefined;
}

export interface AppendResult {
  /** The run's last seq after the append. */
  seq: number;
  /** seq of each input event, in input order (the original seq for a duplicate id). */
  seqs: number[];
  /** Only the events this call stored (duplicates excluded), in seq order. */
  appended: RunEvent[];
  /**
   * The JSON text of each of `appended` (same order), made from the data
   * text the append stored: what the hub hands to watchers.
   */
  appendedText: EventText[];
  run: Run;
}

export interface ClaimOptions {
  owner: Owner;
  names: string[];
  limit: number;
  now: number;
  /** At most this many runs of each of these names in this claim (a name mapped to 0 is not claimed). */
  perName?: ReadonlyMap<string, number> | undefined;
}

/** Runs due for the reaper, without their inputs (each reads as null: the reaper never needs one). */
export interface DueRuns {
  /** Running runs whose lease lapsed. */
  expired: Run[];
  /** Running runs past their total timeout. */
  overdue: Run[];
  /** Running runs with no progress for stallTimeoutMs and no stall recorded yet. */
  stalled: Run[];
  /** Running runs with an open phase older than that phase's timeoutMs. */
  phaseOverdue: Run[];
}

export type { Run, RunError, RunStatus };

/**
 * How a node learns about appends committed by OTHER nodes sharing its
 * store (PostgreSQL LISTEN/NOTIFY). Notifications carry only a run id and
 * the seqs a commit took; the events are read from the store. A
 * notification may be missed (the connection dropped): `onReconnect` is
 * called after every reconnection, and the listener then catches up from
 * what it last knew.
 */
export interface AppendFeed {
  /**
   * A commit took the run from seq `fromSeq` to `seq` (its events are
   * fromSeq+1..seq); `fromSeq` = `seq` = 0 for a run just created, and
   * `fromSeq` = 0 for one imported.
   */
  onAppend(runId: string, seq: number, fromSeq: number): void;
  /** A commit told the run's owner to stop (a cancel request, an end), after its onAppend. */
  onStop?(runId: string): void;
  /**
   * A run was deleted. `run` is its last state without its input, output,
   * error and snapshot (which a list does not need), or null when that did
   * not fit in a notification: then what shows runs must refetch them.
   */
  onDelete(runId: string, run: Run | null): void;
  onReconnect(): void;
  /** The feed lost its connection (it keeps retrying). */
  onDisconnect(err: Error): void;
  /** A node said how many watch runs through it (SharedRunStore.announceWatchers), this node's own announcements included. */
  onWatchers?(announcement: WatchersAnnouncement): void;
  /**
   * A token was revoked (revokeToken, revokeRunToken) on any node, this one
   * included: a scoped token by its id and hash, a run token by its id
   * (`hash` null). Missed while disconnected like any notification: after
   * onReconnect, what was cached about tokens may be stale.
   */
  onTokenRevoked?(revoked: { id: string; hash: string | null }): void;
}

/**
 * How many stream subscriptions of some runs a node holds, so every node
 * can say how many watch a run across the cluster. `counts` are the node's
 * current counts of those runs (0: none any more); a node repeats its
 * non-zero counts every `refreshMs`, so one not heard from for a few of
 * those is gone (killed) and its counts are dropped.
 */
export interface WatchersAnnouncement {
  node: string;
  refreshMs: number;
  counts: Array<[runId: string, count: number]>;
}

/** A store shared by several nodes can feed them each other's appends. */
export interface SharedRunStore extends RunStore {
  listen(feed: AppendFeed): Promise<{ close(): Promise<void> }>;
  /** Tell every node's feed (onWatchers) this node's watcher counts; rejects while the database is unreachable. */
  announceWatchers(announcement: WatchersAnnouncement): Promise<void>;
  /** The store's clock (epoch ms): leases of all nodes are judged on it. */
  databaseNow(): Promise<number>;
  /** This node's connections to the database now, read without asking it (it may be down). */
  databaseStats(): DatabaseStats;
}

/** What an operator sizes a node's pool by and watches its listening connection with. */
export interface DatabaseStats {
  /** Pool connections taken for a statement or transaction (`busy`) or open and free (`idle`); the listening one is apart. */
  connections: { busy: number; idle: number };
  /** Statements waiting for a free pool connection. */
  waitingQueries: number;
  /** Whether the listening connection (other nodes' appends) is up; false while it reconnects. */
  listening: boolean;
  /** Times the listening connection was lost and made again since the node started. */
  listenerReconnects: number;
}

export function isSharedStore(store: RunStore): store is SharedRunStore {
  return typeof (store as Partial<SharedRunStore>).listen === 'function';
}
