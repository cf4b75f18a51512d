import { StartupError } from '../startup-error.js';
import type { RunService } from '../runs/run-service.js';

/** How long the process that last announced this node name has to answer /healthz. */
const ASK_TIMEOUT_MS = 2_000;

/**
 * Refuse to start under a node name another live process uses. A node that
 * starts ends at once the runs its executor held under another incarnation:
 * their process died with it (a restart). A second process given the same
 * name (two `runtrail serve` on one host: the name defaults to the host's)
 * would take a live one's runs for a dead one's, end them orphaned and stop
 * their subprocesses. So the process the registry last heard under this
 * name is asked, at the URL it announced, whether it still lives; only a
 * /healthz answering with that name and incarnation counts as alive. No
 * answer (refused, timed out: a crashed process, a host gone) lets the
 * restart go on at once, as before.
 */
export async function refuseLiveNamesake(runs: RunService, node: string, incarnation: string): Promise<void> {
  const last = (await runs.nodeHandlers()).find((n) => n.node === node);
  if (!last?.url || !last.incarnation || last.incarnation === incarnation) return;
  const answer = await askHealth(last.url);
  if (answer?.node !== node || answer.incarnation !== last.incarnation) return;
  throw new StartupError(
    `node name "${node}" is taken: the runtrail at ${last.url} executes runs as ${node} and answers; ` +
      `under the same name this process would end its running runs as a dead process's. ` +
      `Point clients at that server (their --server or RUNTRAIL_URL: ${last.url}), or give this process its own name (--node, RUNTRAIL_NODE)`,
  );
}

async function askHealth(url: string): Promise<{ node?: unknown; incarnation?: unknown } | null> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(ASK_TIMEOUT_MS) });
    if (!response.ok) return null;
    return (await response.json()) as { node?: unknown; incarnation?: unknown };
  } catch (err) {
    // Refused, reset, timed out or not JSON: nothing alive answers there as that process, which is what we ask.
    void err;
    return null;
  }
}
