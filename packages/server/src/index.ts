export { buildApp, type App, type AppDeps } from './app.js';
export { loadConfig, ServerConfig, type ServerConfigInput } from './config.js';
export { Hub } from './hub.js';
export { RunService } from './runs/run-service.js';
export { startServer, type RunningServer } from './start.js';
