export { buildApp, type App, type AppDeps } from './app.js';
export { loadConfig, ServerConfig, type ServerConfigInput } from './config.js';
export { Hub } from './hub.js';
export { RunService } from './runs/run-service.js';
export { startServer, type RunningServer } from './start.js';
export { Executor, RunContext, RunStop, ExecError, InProcessTransport, type Handler, type ExecOptions, type StopKind } from './executor/index.js';
export { Reaper, type SweepReport } from './leases/reaper.js';
