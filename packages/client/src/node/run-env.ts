/** What a wrapped command needs to know to produce into its own run. */
export interface RunEnvironment {
  /** The run's one server-minted id. */
  runId: string;
  /** The server the run lives on, as the command can reach it (http://host:port); null if it does not listen. */
  url: string | null;
  /** A token for that server when it needs one: a write run token of this run. */
  token?: string | undefined;
}

/**
 * The `RUNTRAIL_*` variables a subprocess of a run gets (`runtrail exec`,
 * `ctx.exec`): with them it can name its outputs by the run id, append to
 * its run over HTTP or create child runs, without being told on its
 * command line (field note 3: one id, carried by everything); with auth on,
 * RUNTRAIL_TOKEN lets it add events and artifacts to its run and no other.
 */
export function runEnvironment(run: RunEnvironment): Record<string, string> {
  return { RUNTRAIL_RUN_ID: run.runId, ...(run.url ? { RUNTRAIL_URL: run.url } : {}), ...(run.token ? { RUNTRAIL_TOKEN: run.token } : {}) };
}
