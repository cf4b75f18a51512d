export { StreamServer, type StreamStats } from './stream-server.js';
export type { StreamDeps } from './types.js';
