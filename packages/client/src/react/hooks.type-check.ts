import type { ConnectionState, TransportName, UseRunOptions, UseRunResult, UseRunsOptions, UseRunsResult } from './index.js';

/**
 * Compile-time checks of what an app imports from `@runtrail/client/react`
 * (never called): `tsc -b` fails if a type the hooks take or answer stops
 * having a name an app can import, as useRuns' options once had none.
 */
export function _hookTypeChecks(run: UseRunResult, runs: UseRunsResult): [UseRunOptions, UseRunsOptions, ConnectionState[], Array<TransportName | null>] {
  const listOptions: UseRunsOptions = { limit: 50, throttleMs: 200 };
  // @ts-expect-error a misspelt option is an error, not ignored
  const misspelt: UseRunsOptions = { limits: 50 };
  return [{ throttleMs: 200, observers: true }, { ...listOptions, ...misspelt }, [run.connection, runs.connection], [run.transport, runs.transport]];
}
