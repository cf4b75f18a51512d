import { Writable } from 'node:stream';
import { buildPath, dashboardRunPath } from '@runtrail/protocol';
import { RuntrailClient } from '@runtrail/client';
import { DEMO_HANDLER, defineDemoHandler } from '../demo/handler.js';
import { serveOptions, type ServeFlags } from '../options.js';
import { followRun, LiveLine } from '../watch-line.js';
import { startServing, stopOnSignals } from './serve.js';

/** `runtrail demo`. */
export async function demo(flags: ServeFlags & { docs: number }): Promise<void> {
  // The run's progress line stays at the bottom of a terminal; the server's log lines go above it.
  const live = process.stdout.isTTY ? new LiveLine(process.stdout) : null;
  const logDestination = live ? new Writable({ write: (chunk: Buffer, _encoding, done) => (live.print(process.stdout, chunk.toString()), done()) }) : undefined;
  const server = await startServing({ ...serveOptions(flags), ...(logDestination ? { logDestination } : {}) });
  defineDemoHandler(server);
  const stopping = stopOnSignals(server);
  const run = await new RuntrailClient({ url: server.url }).startRun({
    name: DEMO_HANDLER,
    input: { docs: flags.docs },
    labels: { kind: 'demo' },
  });
  const say = (line: string) => (live ? live.print(process.stdout, `${line}\n`) : process.stdout.write(`${line}\n`));
  say(`runtrail demo serving on ${server.url}`);
  say(`  dashboard:  ${server.url}${dashboardRunPath(run.id)}`);
  say(`  snapshot:   curl ${server.url}${buildPath('getRun', { id: run.id })}`);
  say(`  events:     curl '${server.url}${buildPath('readEvents', { id: run.id }, { after: 0, limit: 20 })}'`);
  say(`  live (SSE): curl -N ${server.url}${buildPath('streamRun', { id: run.id })}`);
  const final = await followRun({ url: server.url }, run.id, live ? { live } : {});
  const end = final.snapshot.terminal;
  say(`demo run ${run.id} ended ${end?.status ?? final.connection}${end?.error ? `: ${end.error.message}` : ''}`);
  // A signal ends the demo run (interrupted) before the server has stopped: it is not still serving.
  if (!stopping()) say(`still serving; start more runs from the dashboard (${server.url}), Ctrl-C to stop`);
}
