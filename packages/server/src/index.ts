export { buildApp, type App, type AppDeps } from './app.js';
export {
  loadConfig,
  resolveConfig,
  describeConfig,
  settings,
  configKeys,
  ServerConfig,
  CONFIG_FILE_NAME,
  type ServerConfigInput,
  type ConfigKey,
  type ConfigSources,
  type ResolvedConfig,
  type Setting,
} from './config.js';
export { Hub } from './hub.js';
export { RunService } from './runs/run-service.js';
export { createServer, startServer, StartupError, isLoopback, type RunningServer, type RuntrailServer, type StartOptions } from './start.js';
export { TokenService, SECURITY_HEADERS, type Principal } from './security/index.js';
export { Executor, RunContext, RunStop, ExecError, InProcessTransport, type Handler, type ExecOptions, type StopKind } from './executor/index.js';
export { Reaper, type SweepReport } from './leases/reaper.js';
export { ArtifactService, type ArtifactLimits, type PutArtifactOptions, type PutOutcome } from './artifacts/index.js';
