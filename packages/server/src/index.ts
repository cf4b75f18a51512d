export type { App } from './app.js';
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
export { createServer, startServer, StartupError, isLoopback, type RunningServer, type RuntrailServer, type StartOptions } from './start.js';
export type { Principal } from './security/index.js';
export { RunContext, RunStop, ExecError, type Handler, type HandlerOptions, type InputSchema, type ExecOptions, type StopKind } from './executor/index.js';
export type { SweepReport } from './leases/reaper.js';
export type { ArtifactLimits } from './artifacts/index.js';
