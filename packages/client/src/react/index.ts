export { RuntrailProvider, useRuntrailConfig, type RuntrailConfig, type RuntrailProviderProps } from './context.js';
export { useRun, useRuns, type UseRunOptions, type UseRunResult, type UseRunsOptions, type UseRunsResult } from './hooks.js';
export { createRunSource, createRunsSource, type ExternalStore } from './sources.js';
export type { ConnectionReason } from '../watch/transport.js';
export type { ConnectionState, TransportName } from '../watch/types.js';
