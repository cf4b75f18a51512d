import { afterEach } from 'vitest';
import { startServer, type RunningServer, type ServerConfigInput } from '@runtrail/server';
import { tempDir } from './index.js';

/**
 * A real runtrail server on loopback for the tests of any package (server,
 * client SDK, React hook): the client's tests talk to the same server users
 * run, through this package rather than the server's own test kit.
 */

export type TestServer = RunningServer & { cleanup(): Promise<void> };

export async function startTestServer(options: ServerConfigInput = {}): Promise<TestServer> {
  const dataDir = tempDir('runtrail-stream-');
  const server = await startServer({ port: 0, dataDir: dataDir.path, logLevel: 'silent', ...options });
  return Object.assign(server, {
    async cleanup() {
      await server.close();
      dataDir.remove();
    },
  });
}

/**
 * Servers and other resources a test file starts, released after each test
 * in reverse order: `const { cleanups, server } = testScope();`.
 */
export function testScope() {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  const server = async (options: ServerConfigInput = {}) => {
    const s = await startTestServer(options);
    cleanups.push(() => s.cleanup());
    return s;
  };
  return { cleanups, server };
}
