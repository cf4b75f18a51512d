import { hostname } from 'node:os';
import { z } from 'zod';
import { parseOrThrow } from '@runtrail/protocol';

/**
 * The server's whole configuration, parsed and validated once:
 * explicit options (CLI flags) > RUNTRAIL_* environment > defaults.
 * Nothing else in the server reads process.env.
 */
export const ServerConfig = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65535).default(4310),
  dataDir: z.string().min(1).default('./.runtrail'),
  /** Name of this node in run owners; a restarted server with the same name recovers its runs. */
  node: z.string().min(1).default(hostname()),
  bodyLimitBytes: z.coerce.number().int().min(1024).default(8 * 1024 * 1024),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Lease given to a run when its creator does not ask for another. */
  leaseTtlMs: z.coerce.number().int().min(1000).default(30_000),
  /** How often the reaper looks for lapsed leases, stalls and timeouts. */
  reaperIntervalMs: z.coerce.number().int().min(50).default(2_000),
  /** Runs the executor works on at once. */
  concurrency: z.coerce.number().int().min(0).default(4),
  /** How long a stopping node waits for its handlers before ending their runs. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(10_000),
  /** Bytes a WebSocket or SSE connection may have queued before it is switched to catch-up reads. */
  sendBufferBytes: z.coerce.number().int().min(16 * 1024).default(1024 * 1024),
  /** WebSocket ping / SSE keepalive interval; a WebSocket that misses one pong is terminated. */
  streamPingIntervalMs: z.coerce.number().int().min(50).default(15_000),
  /** Directory of the built dashboard to serve at /, if any. */
  webDir: z.string().optional(),
});
export type ServerConfig = z.infer<typeof ServerConfig>;
export type ServerConfigInput = z.input<typeof ServerConfig>;

const ENV_KEYS: Record<keyof ServerConfig, string> = {
  host: 'RUNTRAIL_HOST',
  port: 'RUNTRAIL_PORT',
  dataDir: 'RUNTRAIL_DATA_DIR',
  node: 'RUNTRAIL_NODE',
  bodyLimitBytes: 'RUNTRAIL_BODY_LIMIT_BYTES',
  logLevel: 'RUNTRAIL_LOG_LEVEL',
  leaseTtlMs: 'RUNTRAIL_LEASE_TTL_MS',
  reaperIntervalMs: 'RUNTRAIL_REAPER_INTERVAL_MS',
  concurrency: 'RUNTRAIL_CONCURRENCY',
  shutdownGraceMs: 'RUNTRAIL_SHUTDOWN_GRACE_MS',
  sendBufferBytes: 'RUNTRAIL_SEND_BUFFER_BYTES',
  streamPingIntervalMs: 'RUNTRAIL_STREAM_PING_INTERVAL_MS',
  webDir: 'RUNTRAIL_WEB_DIR',
};

export function loadConfig(
  options: ServerConfigInput = {},
  env: Record<string, string | undefined> = process.env,
): ServerConfig {
  const merged: Record<string, unknown> = {};
  for (const [key, envKey] of Object.entries(ENV_KEYS)) {
    const fromEnv = env[envKey];
    if (fromEnv !== undefined && fromEnv !== '') merged[key] = fromEnv;
  }
  for (const [key, value] of Object.entries(options)) if (value !== undefined) merged[key] = value;
  return parseOrThrow(ServerConfig, merged, 'configuration');
}
