export { RunWatch, watchRun, type RunWatchState, type WatchRunOptions } from './watch-run.js';
export { RunsWatch, watchRuns, type RunsWatchState, type WatchRunsOptions } from './watch-runs.js';
export type { ConnectionReason } from './transport.js';
export type { ConnectionState, TransportName, WatchConnectionOptions, WebSocketConstructor, WebSocketLike } from './types.js';
export { SseParser, type SseRecord } from './sse-parser.js';
