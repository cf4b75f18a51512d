export { RuntrailClient, type RuntrailClientOptions } from './runtrail-client.js';
export { RunHandle, type RunHandleOptions, type CallOptions } from './producer/run-handle.js';
export { HttpProducerTransport, type ProducerTransport } from './producer/transport.js';
export { HttpApi, isRetryable, isAuthFailure, errorFromResponse, type HttpApiOptions } from './http-api.js';
export { backoffDelay, delay } from './backoff.js';
export { waitFor, WaitForTimeoutError, type WaitForOptions, type Ready } from './wait-for.js';
export { RuntrailError } from '@runtrail/protocol';
export { RunWatch, RunsWatch, watchRun, watchRuns, type RunWatchState, type RunsWatchState, type WatchRunOptions, type WatchRunsOptions, type ConnectionState, type TransportName, type WebSocketConstructor } from './watch/index.js';
