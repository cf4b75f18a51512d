import { openStore, type RunStore } from '@runtrail/store';
import { buildApp, type App } from './app.js';
import { describeConfig, resolveConfig, type ConfigSources, type ServerConfigInput } from './config.js';

export interface RunningServer extends App {
  url: string;
  store: RunStore;
  close(): Promise<void>;
}

export interface StartOptions extends ServerConfigInput {
  /** A store to use instead of opening the SQLite store in dataDir. */
  store?: RunStore;
  /** Where the settings not given here come from (environment, config file). */
  sources?: ConfigSources;
}

/** Open the configured store, build the app, listen. */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const { store: given, sources, ...rest } = options;
  const config = resolveConfig(rest, sources).config;
  const store = given ?? openStore({ dataDir: config.dataDir });
  const app = await buildApp({ config, store });
  // Before anyone can read a run: end what a previous incarnation of this
  // node was executing, so nobody sees a dead run as running.
  await app.reaper.start();
  const address = await app.http.listen({ host: config.host, port: config.port });
  app.executor.url = address;
  app.executor.start();
  app.readiness.start();
  app.http.log.info({ config: describeConfig(config), store: store.kind }, `runtrail listening on ${address}`);
  let closed: Promise<void> | null = null;
  return {
    ...app,
    url: address,
    store,
    close: () =>
      (closed ??= (async () => {
        // Handlers get their grace period while watchers can still see them end.
        app.readiness.stop();
        await app.executor.shutdown();
        await app.reaper.stop();
        await app.http.close();
        await store.close();
      })()),
  };
}
