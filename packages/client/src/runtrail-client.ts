import {
  IDEMPOTENCY_KEY_HEADER,
  IMPORTED_RUNS_HEADER,
  RANGE_HEADER,
  type Artifact,
  type DashboardConfig,
  type HandlersResponse,
  type CreateRunBody,
  type CreateTokenBody,
  type CreatedRunToken,
  type CreatedToken,
  type RevokedToken,
  type TokenInfo,
  type WhoamiResponse,
  type ListRunsQuery,
  type ListRunsResponse,
  type RunCounts,
  type RunsFilter,
  type Owner,
  type ReadEventsResponse,
  type Run,
  type RunWithObservers,
} from '@runtrail/protocol';
import { HttpApi, type HttpApiOptions } from './http-api.js';
import { RunHandle, type RunHandleOptions } from './producer/run-handle.js';
import { HttpProducerTransport, putArtifact } from './producer/transport.js';
import { retrying } from './backoff.js';
import { exitGuard } from './producer/exit-guard.js';
import { openSource, toReadableStream, type ArtifactOptions, type ArtifactSource } from './artifacts/source.js';

export type RuntrailClientOptions = Omit<HttpApiOptions, 'url'> & {
  /**
   * The server's base URL. In Node, when not given: RUNTRAIL_URL, else
   * http://127.0.0.1:4310, as the CLI and Python's Client() take it (a
   * token, when not given, is RUNTRAIL_TOKEN's). A browser page gives it
   * ('' for the page's own server).
   */
  url?: string;
  /**
   * How long `createRun` keeps retrying a server that is unreachable or
   * restarting (503) before it throws (default 5 s): a script started just
   * before its server does not fail, and one whose server is down says so.
   */
  startTimeoutMs?: number;
  /** Producer batching/retry settings for handles this client creates. */
  producer?: Pick<
    RunHandleOptions,
    'flushIntervalMs' | 'maxBatch' | 'maxBatchBytes' | 'maxEventDataBytes' | 'maxMetaBytes' | 'maxQueued' | 'retryForMs' | 'holdHeartbeat' | 'clock'
  > & {
    /**
     * In Node, a run still open when its process goes away is ended there:
     * the events it had queued are stored and it ends failed with the
     * uncaught exception, the stopping signal or the exit (cancelled, when
     * a cancel had been requested), rather than reaped `orphaned` a lease
     * later without them (default true).
     */
    endOnExit?: boolean;
    /** How long a process going away waits for that, in all (default 10 s, as Python's `exit_timeout`). */
    exitTimeoutMs?: number;
  };
};

/** Where a RuntrailClient's user gives a token (the server's 401 says only "send Authorization: Bearer"). */
const CLIENT_TOKEN_HINT = 'pass one as the `token` option, new RuntrailClient({ url, token }), or in Node set RUNTRAIL_TOKEN';

/** A server `runtrail serve` starts with no options. */
const DEFAULT_SERVER_URL = 'http://127.0.0.1:4310';

/** Node's environment; none in a browser (no `process` there, or a bundler's stand-in without `env`). */
function processEnv(): Record<string, string | undefined> | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
}

/** The REST face of a runtrail server, and the factory of producer handles. */
/** What RuntrailClient.handlerAvailability says (GET /handlers). */
export interface HandlerAvailability {
  /** Handlers a run can be started for through this node, sorted. */
  startable: string[];
  /** How long queued runs wait for a node that defines their handler; 0 = for ever. */
  queuedOrphanTimeoutMs: number;
  /** By handler no live node defines (as the server's reaper counts): when its queued runs end failed/orphaned, epoch ms. */
  endsAt: ReadonlyMap<string, number>;
  /** Every live node's handlers and slots (GET /handlers `nodes`): why a run of a defined handler waits (slotWaitText). */
  nodes: HandlersResponse['nodes'];
}

export class RuntrailClient {
  readonly api: HttpApi;
  private readonly producerOptions: RuntrailClientOptions['producer'];
  private readonly startTimeoutMs: number;

  constructor(options: RuntrailClientOptions = {}) {
    const env = processEnv();
    this.api = new HttpApi({
      tokenHint: CLIENT_TOKEN_HINT,
      ...options,
      url: options.url ?? env?.RUNTRAIL_URL ?? DEFAULT_SERVER_URL,
      token: options.token ?? (env?.RUNTRAIL_TOKEN || undefined),
    });
    this.producerOptions = options.producer;
    this.startTimeoutMs = options.startTimeoutMs ?? 5_000;
  }

  /**
   * Create a run that THIS process produces, and return its handle. The
   * server mints the id; the handle carries it everywhere (field note 3).
   * `signal` stops the retries of a server that does not answer yet: no
   * attempt starts once it aborts, and one in flight is still answered, so
   * a run it made comes back (for the caller to end) rather than lost.
   */
  async createRun(body: Omit<CreateRunBody, 'execute' | 'owner'>, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<RunHandle> {
    const owner: Owner = { kind: 'producer', node: nodeName(), id: randomId() };
    // Retried through a restart: the key (the owner's id unless the caller gave one) makes it one run.
    const run = await retrying(
      () =>
        this.api.request('createRun', {
          body: { ...body, owner },
          headers: { [IDEMPOTENCY_KEY_HEADER]: options.idempotencyKey ?? owner.id },
        }),
      this.startTimeoutMs,
      this.producerOptions?.clock,
      options.signal,
    );
    return this.handleOf(run, owner);
  }

  /**
   * A handle on a run another process owns and ends (`runtrail exec`, a
   * handler's `ctx.exec`): it adds events and artifacts with the same API;
   * it neither heartbeats nor ends the run (`succeed()` and the like
   * throw). See `currentRun()`.
   */
  async attach(runId: string): Promise<RunHandle> {
    const run = await retrying(() => this.api.request('getRun', { params: { id: runId } }), this.startTimeoutMs, this.producerOptions?.clock);
    return this.handleOf(run, null);
  }

  private handleOf(run: Run, owner: Owner | null): RunHandle {
    const { endOnExit = true, exitTimeoutMs = 10_000, ...handleOptions } = this.producerOptions ?? {};
    const handle = new RunHandle({
      runId: run.id,
      name: run.name,
      transport: new HttpProducerTransport(this.api),
      owner,
      leaseTtlMs: run.leaseTtlMs,
      ...handleOptions,
    });
    // An attached handle's events are stored at exit too; its owner ends the run.
    if (endOnExit) exitGuard()?.watch(handle, this.api, exitTimeoutMs);
    return handle;
  }

  /**
   * Queue a run for a handler registered on the server (`rt.define`).
   * `idempotencyKey`: asked again with the same key (a retried script),
   * the server answers the run it made the first time instead of a second.
   */
  startRun(body: Omit<CreateRunBody, 'execute' | 'owner'>, options: { idempotencyKey?: string } = {}): Promise<Run> {
    const headers = options.idempotencyKey === undefined ? undefined : { [IDEMPOTENCY_KEY_HEADER]: options.idempotencyKey };
    return this.api.request('createRun', { body: { ...body, execute: true }, ...(headers ? { headers } : {}) });
  }

  getRun(id: string): Promise<RunWithObservers> {
    return this.api.request('getRun', { params: { id } });
  }

  listRuns(query: ListRunsQuery = {}): Promise<ListRunsResponse> {
    return this.api.request('listRuns', { query: query as Record<string, string | number | undefined> });
  }

  /** How many runs match a list's filter, by status, over every page (a list's totals). */
  countRuns(filter: RunsFilter = {}): Promise<RunCounts> {
    return this.api.request('countRuns', { query: filter as Record<string, string | number | undefined> });
  }

  readEvents(id: string, after = 0, limit?: number): Promise<ReadEventsResponse> {
    return this.api.request('readEvents', { params: { id }, query: { after, limit } });
  }

  cancelRun(id: string, reason?: string): Promise<Run> {
    return this.api.request('cancelRun', { params: { id }, body: reason ? { reason } : {} });
  }

  /**
   * A new attempt of an ended run (its name, input and labels). Retried through
   * a lost answer or a restarting server under one Idempotency-Key (a fresh one
   * unless given), so a click that got no answer makes one attempt, not two.
   */
  retryRun(id: string, options: { idempotencyKey?: string } = {}): Promise<Run> {
    const key = options.idempotencyKey ?? randomId();
    return retrying(
      () => this.api.request('retryRun', { params: { id }, headers: { [IDEMPOTENCY_KEY_HEADER]: key } }),
      this.startTimeoutMs,
      this.producerOptions?.clock,
    );
  }

  deleteRun(id: string): Promise<void> {
    return this.api.request('deleteRun', { params: { id } });
  }

  /** Whether the server needs a token, and what this client's token may do. */
  whoami(): Promise<WhoamiResponse> {
    return this.api.request('whoami');
  }

  /** The server's settings a dashboard follows: which hosts' linked artifacts it may preview. */
  dashboardConfig(): Promise<DashboardConfig> {
    return this.api.request('dashboardConfig');
  }

  /** Mint a scoped token (admin). Its secret is in the answer and nowhere else. */
  createToken(body: CreateTokenBody): Promise<CreatedToken> {
    return this.api.request('createToken', { body });
  }

  async listTokens(): Promise<TokenInfo[]> {
    return (await this.api.request('listTokens')).tokens;
  }

  /** Idempotent: a token revoked before is answered with alreadyRevoked and the time it was. */
  revokeToken(id: string): Promise<RevokedToken> {
    return this.api.request('revokeToken', { params: { id } });
  }

  /**
   * A token that reads and watches this run and its children only, for a browser or a shared link;
   * `write`: it may also append to them (a subprocess's token). `ttlSeconds` as the server's default otherwise.
   */
  createRunToken(runId: string, options: number | { ttlSeconds?: number; write?: boolean } = {}): Promise<CreatedRunToken> {
    // A number: the lifetime, as before `write` could be asked for.
    const { ttlSeconds, write } = typeof options === 'number' ? { ttlSeconds: options, write: undefined } : options;
    return this.api.request('createRunToken', {
      params: { id: runId },
      body: { ...(ttlSeconds === undefined ? {} : { ttlSeconds }), ...(write === undefined ? {} : { write }) },
    });
  }

  async listArtifacts(runId: string): Promise<Artifact[]> {
    return (await this.api.request('listArtifacts', { params: { id: runId } })).artifacts;
  }

  /** Store an artifact on any run (a producer uses `run.artifact`). */
  async putArtifact(runId: string, name: string, source: ArtifactSource, options: ArtifactOptions = {}): Promise<Artifact> {
    return putArtifact(this.api, runId, name, await openSource(source, options.size), options);
  }

  /** An artifact's content as a streamed Response (`range: 'bytes=0-99'` for part of it). */
  fetchArtifact(runId: string, name: string, options: { range?: string; signal?: AbortSignal } = {}): Promise<Response> {
    return this.api.send('getArtifact', {
      params: { id: runId, name },
      headers: options.range ? { [RANGE_HEADER]: options.range } : {},
      timeoutMs: null,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /**
   * The whole run (its record, every event, every artifact) as one tar
   * archive, streamed; `family: true`, with every run under it (children,
   * theirs…), refused while any of them has not ended.
   */
  exportRun(id: string, options: { signal?: AbortSignal; family?: boolean } = {}): Promise<Response> {
    return this.api.send('exportRun', {
      params: { id },
      ...(options.family ? { query: { family: 'true' } } : {}),
      timeoutMs: null,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /**
   * Load an archive written by exportRun (bytes, a stream or `{ path }`) into
   * this server: the run keeps its id, and one that exists here is a 409
   * (unless it is the same ended run: a repeated import answers it).
   */
  async importRun(archive: ArtifactSource, options: { size?: number } = {}): Promise<Run> {
    return (await this.importArchive(archive, options)).run;
  }

  /**
   * importRun, also saying how many runs the archive loaded: 1, or for a
   * family archive (exportRun with `family: true`) the run and every run
   * under it, all loaded in one transaction or none. `imported: false`: every
   * run of the archive was here already as it holds it (an import repeated
   * after a lost answer), and nothing changed.
   */
  async importArchive(archive: ArtifactSource, options: { size?: number } = {}): Promise<{ run: Run; runs: number; imported: boolean }> {
    const { content, size } = await openSource(archive, options.size);
    const response = await this.api.send('importRun', {
      raw: (content instanceof Uint8Array ? content : toReadableStream(content)) as BodyInit,
      headers: { 'content-type': 'application/x-tar', ...(size === null ? {} : { 'content-length': String(size) }) },
      timeoutMs: null,
    });
    const run = (await response.json()) as Run;
    // A server older than family archives sends no count: it imported the one run.
    return { run, runs: Number(response.headers.get(IMPORTED_RUNS_HEADER) ?? 1), imported: response.status === 201 };
  }

  /**
   * The run's whole output log as a streamed Response (`range: 'bytes=-4096'`
   * for its end); a run whose log this server lacks fails with log_not_found
   * saying where its output went.
   */
  fetchLog(runId: string, options: { range?: string; signal?: AbortSignal } = {}): Promise<Response> {
    return this.api.send('runLog', {
      params: { id: runId },
      headers: options.range ? { [RANGE_HEADER]: options.range } : {},
      timeoutMs: null,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /**
   * The whole GET /handlers answer: this node's handlers, every live
   * node's, when queued runs no node defines end, and `inputs`: each
   * startable handler with the nodes that define it and its input's JSON
   * Schema where this node defines it (or why there is none).
   */
  describeHandlers(): Promise<HandlersResponse> {
    return this.api.request('listHandlers');
  }

  /** The handlers the node this client reaches can execute. */
  async listHandlers(): Promise<string[]> {
    const response = await this.api.request('listHandlers');
    return response.handlers;
  }

  /**
   * The handlers a run can be started for through this node: its own and
   * those of every other live node on the same database (any node accepts
   * those, and one that has the handler runs it), sorted.
   */
  async startableHandlers(): Promise<string[]> {
    return (await this.handlerAvailability()).startable;
  }

  /**
   * Whether queued runs of a handler will start, and when they end if not:
   * the handlers startable through this node (startableHandlers), how long
   * the server lets queued runs wait for a node that defines their handler
   * (queuedOrphanTimeoutMs, 0 = for ever), and, for each handler its reaper
   * finds no live node defining, the moment its queued runs end
   * failed/orphaned if none defines it by then (`endsAt`, epoch ms).
   */
  async handlerAvailability(): Promise<HandlerAvailability> {
    const { handlers, nodes, queuedOrphanTimeoutMs, unclaimable } = await this.api.request('listHandlers');
    return {
      startable: [...new Set([...handlers, ...nodes.flatMap((n) => n.handlers)])].sort(),
      queuedOrphanTimeoutMs,
      endsAt: new Map(unclaimable.map((u) => [u.handler, u.endsAt])),
      nodes,
    };
  }
}

function randomId(): string {
  return globalThis.crypto.randomUUID();
}

/** Names the producing process in the run's owner, so an orphaned run says whose it was. */
function nodeName(): string {
  const proc = (globalThis as { process?: { pid?: number } }).process;
  return proc?.pid !== undefined ? `pid-${proc.pid}` : 'browser';
}
