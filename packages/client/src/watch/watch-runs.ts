import { RuntrailError, type ListRunsResponse, type Run, type RunsFilter, type ServerMessage } from '@runtrail/protocol';
import { backoffDelay, delay } from '../backoff.js';
import { closeError, resolveWebSocket, watcherApi } from './connection.js';
import { isAuthFailure, isRetryable, type HttpApi } from '../http-api.js';
import { idleWatchdog } from './idle-watchdog.js';
import { toWebSocketUrl } from './ws-url.js';
import type { ConnectionState, WatchConnectionOptions, WebSocketConstructor, WebSocketLike } from './types.js';

export interface WatchRunsOptions extends WatchConnectionOptions {
  filter?: RunsFilter;
  /** The newest this many runs are listed. Default 100 (at most 200, the API's page). */
  limit?: number;
}

export interface RunsWatchState {
  /** Newest first. */
  runs: readonly Run[];
  connection: ConnectionState;
  error: RuntrailError | null;
}

type Change = { change: 'created' | 'updated' | 'deleted'; run: Run };

/**
 * A live list of runs: the list from `GET /runs`, kept current by the
 * WebSocket runs subscription (or by polling the list when WebSocket is
 * not available). The subscription is opened BEFORE the list is read, and
 * changes that arrive while it is read are applied after it, newest seq
 * winning, so no change slips between the two.
 */
export class RunsWatch {
  private state: RunsWatchState = { runs: [], connection: 'connecting', error: null };
  private readonly api: HttpApi;
  private readonly WS: WebSocketConstructor | null;
  private readonly listeners = new Set<() => void>();
  private readonly aborter = new AbortController();
  private byId = new Map<string, Run>();
  private started = false;
  private wsSkipUntil = 0;

  constructor(private readonly options: WatchRunsOptions) {
    this.api = watcherApi(options);
    this.WS = resolveWebSocket(options);
  }

  start(): this {
    if (this.started) return this;
    this.started = true;
    void this.loop();
    return this;
  }

  getState = (): RunsWatchState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  close(): void {
    this.aborter.abort();
    this.update({ connection: 'ended' });
  }

  private async loop(): Promise<void> {
    const signal = this.aborter.signal;
    let attempt = 0;
    let wsFailures = 0;
    try {
      while (!signal.aborted) {
        const useWs = this.WS !== null && (this.options.transports ?? ['ws']).includes('ws') && Date.now() >= this.wsSkipUntil;
        const result = useWs ? await this.wsSession() : await this.pollSession();
        if (signal.aborted) return;
        if (result.opened) {
          attempt = 0;
          wsFailures = 0;
        } else if (useWs && ++wsFailures >= 2) {
          wsFailures = 0;
          this.wsSkipUntil = Date.now() + (this.options.transportRetryMs ?? 30_000);
        }
        // No reconnect makes a refused token good: end with the reason.
        if (isAuthFailure(result.error)) throw result.error;
        if (result.error !== undefined) this.update({ error: toError(result.error) });
        this.update({ connection: 'reconnecting' });
        await delay(backoffDelay(attempt++, this.options.backoff ?? { initialMs: 250, maxMs: 10_000 }, this.options.random), signal);
      }
    } catch (err) {
      if (signal.aborted) return;
      this.update({ connection: 'ended', error: toError(err) });
    }
  }

  private wsSession(): Promise<{ opened: boolean; error?: unknown }> {
    return new Promise((resolve) => {
      const url = toWebSocketUrl(this.api.url('stream', {}), this.options.token);
      let ws: WebSocketLike;
      try {
        ws = new this.WS!(url);
      } catch (error) {
        resolve({ opened: false, error });
        return;
      }
      let opened = false;
      let settled = false;
      /** Changes that arrive while the list is being (re)read; null when none is being read. */
      let pending: Change[] | null = null;
      const idleMs = this.options.idleTimeoutMs ?? 45_000;
      const watchdog = idleWatchdog(
        idleMs,
        () => {
          if (ws.readyState === 1) ws.send('{"op":"ping"}');
        },
        () => finish(new RuntrailError('unavailable', `nothing received for ${idleMs} ms; reconnecting`)),
      );
      const finish = (error?: unknown): void => {
        if (settled) return;
        settled = true;
        watchdog.stop();
        this.aborter.signal.removeEventListener('abort', onAbort);
        ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
        if (ws.readyState <= 1) ws.close();
        resolve(error === undefined ? { opened } : { opened, error });
      };
      const onAbort = (): void => finish();
      this.aborter.signal.addEventListener('abort', onAbort, { once: true });
      ws.onopen = () => {
        const { status, name, parentId, label } = this.options.filter ?? {};
        ws.send(JSON.stringify({ op: 'subscribeRuns', filter: { status, name, parentId, label } }));
      };
      ws.onerror = () => {
        // The close event that follows carries the outcome.
      };
      ws.onclose = (event: { code?: number; reason?: string }) => finish(closeError(event) ?? undefined);
      ws.onmessage = (event: { data: unknown }) => {
        watchdog.touch();
        let msg: ServerMessage;
        try {
          msg = JSON.parse(String(event.data)) as ServerMessage;
        } catch (error) {
          finish(error);
          return;
        }
        if (msg.type === 'subscribedRuns') {
          opened = true;
          pending = [];
          this.fetchList()
            .then((list) => {
              const buffered = pending ?? [];
              pending = null;
              this.byId = new Map(list.map((r) => [r.id, r]));
              for (const c of buffered) this.applyChange(c);
              this.publish({ connection: 'live', error: null });
            })
            .catch((error: unknown) => finish(error));
        } else if (msg.type === 'run') {
          if (pending) pending.push({ change: msg.change, run: msg.run });
          else {
            this.applyChange(msg);
            this.publish({});
          }
        } else if (msg.type === 'error') finish(new RuntrailError(msg.code, msg.message));
      };
    });
  }

  private async pollSession(): Promise<{ opened: boolean; error?: unknown }> {
    let opened = false;
    try {
      for (;;) {
        const list = await this.fetchList();
        opened = true;
        this.byId = new Map(list.map((r) => [r.id, r]));
        this.publish({ connection: 'polling', error: null });
        if (this.WS !== null && this.wsSkipUntil > 0 && Date.now() >= this.wsSkipUntil) return { opened };
        await delay(this.options.pollIntervalMs ?? 1000, this.aborter.signal);
      }
    } catch (error) {
      if (this.aborter.signal.aborted || !isRetryable(error)) throw error;
      return { opened, error };
    }
  }

  private async fetchList(): Promise<Run[]> {
    const { status, name, parentId, label } = this.options.filter ?? {};
    const res = await this.api.request<ListRunsResponse>('listRuns', {
      query: { status, name, parentId, label, limit: Math.min(this.options.limit ?? 100, 200) },
      signal: this.aborter.signal,
    });
    return res.runs;
  }

  private applyChange({ change, run }: Change): void {
    if (change === 'deleted') {
      this.byId.delete(run.id);
      return;
    }
    const known = this.byId.get(run.id);
    if (known && known.seq > run.seq) return;
    const status = this.options.filter?.status;
    if (status !== undefined && run.status !== status) this.byId.delete(run.id);
    else this.byId.set(run.id, run);
  }

  private publish(patch: Partial<RunsWatchState>): void {
    const limit = this.options.limit ?? 100;
    const runs = [...this.byId.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    if (runs.length > limit) {
      runs.length = limit;
      this.byId = new Map(runs.map((r) => [r.id, r]));
    }
    this.update({ ...patch, runs });
  }

  private update(patch: Partial<RunsWatchState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of [...this.listeners]) listener();
  }
}

/** Watch the runs list live (see RunsWatch). Starts connecting at once. */
export function watchRuns(options: WatchRunsOptions): RunsWatch {
  return new RunsWatch(options).start();
}

function toError(err: unknown): RuntrailError {
  if (err instanceof RuntrailError) return err;
  return new RuntrailError('unavailable', err instanceof Error ? err.message : String(err));
}
