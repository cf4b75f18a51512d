import { createServer } from 'node:net';
import { expect, it } from 'vitest';
import { RuntrailClient } from './runtrail-client.js';

/** A loopback port that nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

it('a server that does not answer is named in the error, with why, not just "fetch failed"', async () => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const rt = new RuntrailClient({ url });
  const err = await rt.createRun({ name: 'nobody home' }).catch((e: unknown) => e);
  // Still fetch's TypeError with its cause: retries and the CLI know it as a network failure.
  expect(err).toBeInstanceOf(TypeError);
  expect((err as TypeError).message).toBe(`cannot reach the runtrail server: POST ${url}/api/v1/runs failed (ECONNREFUSED)`);
  expect(((err as TypeError).cause as { code?: string }).code).toBe('ECONNREFUSED');
  const read = await rt.fetchArtifact('01a22003-8dc8-7235-9aef-0608e89bc08d', 'a.txt').catch((e: unknown) => e);
  expect((read as TypeError).message).toContain(`cannot reach the runtrail server: GET ${url}/api/v1/runs/`);
});
