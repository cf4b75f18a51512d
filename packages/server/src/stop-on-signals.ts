/**
 * SIGTERM and SIGINT close this process's servers gracefully (handlers are
 * asked to stop and given their grace, nothing is left running), as the
 * README promises of a server, including one an application starts with
 * startServer and never thinks of signals for. Node's default would end the
 * process at once and leave the runs to the next start's recovery.
 *
 * The process then ends as it would have without us: by the signal, raised
 * again once our listener is gone. A process that listens for the signal
 * itself (`runtrail serve`, an application's own shutdown) decides for
 * itself whether it ends; its servers are closed all the same (close() is
 * idempotent, so its own close() waits for the same shutdown). A second
 * signal while closing ends the process at once, as a second Ctrl-C should.
 */
const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

const servers = new Set<() => Promise<void>>();
let listening = false;
let closing = false;

/** Close `close`'s server on SIGTERM/SIGINT until the returned function is called. */
export function stopOnSignals(close: () => Promise<void>): () => void {
  servers.add(close);
  if (!listening) {
    listening = true;
    for (const signal of SIGNALS) process.on(signal, onSignal);
  }
  return () => {
    servers.delete(close);
    // Once closing, the listener stays until the process ends: a second signal must still end it at once.
    if (servers.size === 0 && !closing) unlisten();
  };
}

function onSignal(signal: NodeJS.Signals): void {
  const alone = process.listenerCount(signal) === 1;
  if (closing) {
    if (alone) raise(signal);
    return;
  }
  closing = true;
  void Promise.allSettled([...servers].map((close) => close())).then(() => {
    if (alone) raise(signal);
  });
}

function unlisten(): void {
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  listening = false;
}

function raise(signal: NodeJS.Signals): void {
  unlisten();
  process.kill(process.pid, signal);
}
