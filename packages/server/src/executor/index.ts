export { Executor, RunStop, type Handler, type HandlerOptions, type InputSchema, type StopKind, type ExecutorOptions } from './executor.js';
export { RunContext, ExecError, type ExecOptions } from './context.js';
export { InProcessTransport } from './in-process-transport.js';
export { registerExecutorRoutes } from './routes.js';
