import { createContext, useContext, useMemo, type ReactNode } from 'react';
import type { WatchConnectionOptions } from '../watch/types.js';

/** Where the hooks connect: the server's base URL and optional transport settings. */
export type RuntrailConfig = WatchConnectionOptions;

const RuntrailContext = createContext<RuntrailConfig | null>(null);

export interface RuntrailProviderProps extends RuntrailConfig {
  children?: ReactNode;
}

/** Give useRun/useRuns a server. `url` may be '' for the page's own origin in a browser. */
export function RuntrailProvider({ children, ...config }: RuntrailProviderProps) {
  const { url, token, WebSocket, fetch, headers, transports, backoff, pollIntervalMs, transportRetryMs, requestTimeoutMs, random } = config;
  const value = useMemo(
    () => config,
    // Re-create watchers only when a setting really changes (not on every parent render).
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [url, token, WebSocket, fetch, JSON.stringify(headers ?? {}), (transports ?? []).join(','), backoff?.initialMs, backoff?.maxMs, pollIntervalMs, transportRetryMs, requestTimeoutMs, random],
  );
  return <RuntrailContext.Provider value={value}>{children}</RuntrailContext.Provider>;
}

export function useRuntrailConfig(): RuntrailConfig {
  const config = useContext(RuntrailContext);
  if (!config) throw new Error('useRun/useRuns need a <RuntrailProvider url=...> above them');
  return config;
}
