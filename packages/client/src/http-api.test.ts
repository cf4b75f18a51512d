import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { defaultMaxListeners, getEventListeners, getMaxListeners } from 'node:events';
import { expect, it } from 'vitest';
import { RuntrailError } from '@runtrail/protocol';
import { startTestServer } from '@runtrail/test-support/server';
import { RuntrailClient } from './runtrail-client.js';
import { watchRun } from './watch/index.js';

const ADMIN = 'http-api-admin-token-0123456789';

/** A loopback port that nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

it("downloads given the caller's signal leave it as it was (no listener left on it, its listener limit unchanged), and its abort still stops one", async () => {
  const s = await startTestServer({});
  try {
    const client = new RuntrailClient({ url: s.url });
    const run = await client.createRun({ name: 'has a file' });
    await run.artifact('big.bin', new Uint8Array(8 << 20));
    const app = new AbortController();
    for (let i = 0; i < 20; i++) await (await client.fetchArtifact(run.id, 'big.bin', { range: 'bytes=0-9', signal: app.signal })).arrayBuffer();
    // Before, fetch was handed this very signal: 20 listeners stayed on it until garbage collection, and its limit went up to 1500.
    expect(getEventListeners(app.signal, 'abort')).toHaveLength(0);
    expect(getMaxListeners(app.signal)).toBe(defaultMaxListeners);
    const response = await client.fetchArtifact(run.id, 'big.bin', { signal: app.signal });
    const reader = response.body!.getReader();
    await reader.read();
    const reason = new Error('the user left the page');
    app.abort(reason);
    await expect(reader.read()).rejects.toBe(reason);
    await run.succeed();
  } finally {
    await s.cleanup();
  }
});

it('a url fetch cannot use is refused when the client is made, not retried as a network failure', async () => {
  // Before, '127.0.0.1:4310' made createRun retry "Failed to parse URL" for startTimeoutMs, and a watcher reconnect forever.
  for (const url of ['127.0.0.1:4310', 'localhost:4310', 'ftp://127.0.0.1:4310', '']) {
    expect(() => new RuntrailClient({ url })).toThrow(
      expect.objectContaining({ code: 'invalid_request', message: `invalid client options: url: ${JSON.stringify(url)} is not an http:// or https:// URL of a runtrail server (such as http://127.0.0.1:4310)` }),
    );
    expect(() => watchRun('01a22003-8dc8-7235-9aef-0608e89bc08d', { url, transports: ['poll'] })).toThrow(expect.objectContaining({ code: 'invalid_request' }));
  }
  expect(new RuntrailClient({ url: 'https://runs.example.com/' }).api.baseUrl).toBe('https://runs.example.com');
});

it("the API's URL is refused when the client is made, naming the root to give; a page's URL says so when the server answers route_not_found", async () => {
  const s = await startTestServer({});
  try {
    // Before: every request went to <url>/api/v1/api/v1/... and answered route_not_found naming only that path.
    for (const [url, root] of [
      [`${s.url}/api/v1/`, s.url],
      [`${s.url}/proxy/api/v1`, `${s.url}/proxy`],
    ]) {
      const message = `invalid client options: url: ${JSON.stringify(url)} is the server's API; give ${JSON.stringify(root)}, the server's root (the client adds /api/v1 itself)`;
      expect(() => new RuntrailClient({ url })).toThrow(expect.objectContaining({ code: 'invalid_request', message }));
      expect(() => watchRun('01a22003-8dc8-7235-9aef-0608e89bc08d', { url, transports: ['poll'] })).toThrow(message);
    }
    // A prefix that only looks like it is a proxy's own.
    expect(new RuntrailClient({ url: `${s.url}/api-proxy` }).api.baseUrl).toBe(`${s.url}/api-proxy`);
    const page = await new RuntrailClient({ url: `${s.url}/runs/some-run` }).listRuns().catch((e: unknown) => e);
    expect(page).toMatchObject({ code: 'route_not_found' });
    expect((page as RuntrailError).message).toContain(`; this client's URL is ${s.url}/runs/some-run: give the server's root (with only the prefix a proxy serves it under)`);
  } finally {
    await s.cleanup();
  }
});

it('a server that does not answer is named in the error, with why, not just "fetch failed"', async () => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const rt = new RuntrailClient({ url, startTimeoutMs: 300 });
  const err = await rt.createRun({ name: 'nobody home' }).catch((e: unknown) => e);
  // Still fetch's TypeError with its cause: retries and the CLI know it as a network failure.
  expect(err).toBeInstanceOf(TypeError);
  expect((err as TypeError).message).toBe(`cannot reach the runtrail server: POST ${url}/api/v1/runs failed (ECONNREFUSED)`);
  expect(((err as TypeError).cause as { code?: string }).code).toBe('ECONNREFUSED');
  const read = await rt.fetchArtifact('01a22003-8dc8-7235-9aef-0608e89bc08d', 'a.txt').catch((e: unknown) => e);
  expect((read as TypeError).message).toContain(`cannot reach the runtrail server: GET ${url}/api/v1/runs/`);
});

it('a server that takes longer than the request timeout is named in the error, with the time waited', async () => {
  // Accepts the request and never answers.
  const silent = createHttpServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const rt = new RuntrailClient({ url, requestTimeoutMs: 200 });
    const err = await rt.getRun('01a22003-8dc8-7235-9aef-0608e89bc08d').catch((e: unknown) => e);
    expect((err as Error).name).toBe('TimeoutError');
    expect((err as Error).message).toBe(`the runtrail server did not answer GET ${url}/api/v1/runs/01a22003-8dc8-7235-9aef-0608e89bc08d within 200 ms (requestTimeoutMs)`);
  } finally {
    silent.closeAllConnections();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

it('in Node, a client given no url or token takes RUNTRAIL_URL and RUNTRAIL_TOKEN, as the CLI and Python\'s Client() do', async () => {
  const s = await startTestServer({ adminToken: ADMIN });
  const saved = { url: process.env.RUNTRAIL_URL, token: process.env.RUNTRAIL_TOKEN };
  try {
    process.env.RUNTRAIL_URL = s.url;
    process.env.RUNTRAIL_TOKEN = ADMIN;
    // Before: `url` was required, and a watcher script had to pass process.env.RUNTRAIL_URL itself.
    const fromEnv = new RuntrailClient();
    expect(fromEnv.api.url('listRuns', {})).toBe(`${s.url}/api/v1/runs`);
    expect((await fromEnv.listRuns()).runs).toEqual([]);
    // What is given wins: an empty token is no token, not the variable's.
    await expect(new RuntrailClient({ url: s.url, token: '' }).listRuns()).rejects.toMatchObject({ code: 'unauthorized' });
    delete process.env.RUNTRAIL_URL;
    expect(new RuntrailClient({ token: ADMIN }).api.url('listRuns', {})).toBe('http://127.0.0.1:4310/api/v1/runs');
  } finally {
    for (const [name, value] of [['RUNTRAIL_URL', saved.url], ['RUNTRAIL_TOKEN', saved.token]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await s.cleanup();
  }
});

it('a 401 to a client given no token says how to give it one; a refused token keeps the server\'s words', async () => {
  const s = await startTestServer({ adminToken: ADMIN });
  try {
    const anonymous = new RuntrailClient({ url: s.url, startTimeoutMs: 0 });
    // Before, only the server's words, written for any HTTP client: which option of this SDK takes the token was left to guess.
    const hinted = 'this server needs a token: send Authorization: Bearer <token> (no token was given to this client: pass one as the `token` option, new RuntrailClient({ url, token }), or in Node set RUNTRAIL_TOKEN)';
    for (const call of [() => anonymous.listRuns(), () => anonymous.createRun({ name: 'private' }), () => anonymous.exportRun('01a22003-8dc8-7235-9aef-0608e89bc08d')]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntrailError);
      expect(err).toMatchObject({ code: 'unauthorized', message: hinted });
    }
    // An empty token (an unset variable read as '') is no token.
    await expect(new RuntrailClient({ url: s.url, token: '' }).listRuns()).rejects.toMatchObject({ message: hinted });
    await expect(new RuntrailClient({ url: s.url, token: 'not-the-token-at-all-0000' }).listRuns()).rejects.toMatchObject({
      code: 'unauthorized',
      message: 'the token is not valid on this server',
    });
    // A caller that tells its users otherwise (the CLI: RUNTRAIL_TOKEN) says that instead.
    await expect(new RuntrailClient({ url: s.url, tokenHint: 'set RUNTRAIL_TOKEN' }).listRuns()).rejects.toMatchObject({
      message: 'this server needs a token: send Authorization: Bearer <token> (no token was given to this client: set RUNTRAIL_TOKEN)',
    });
    expect((await new RuntrailClient({ url: s.url, token: ADMIN }).listRuns()).runs).toEqual([]);
  } finally {
    await s.cleanup();
  }
});

it('a url that reaches some other server (an HTML page, a 404 without runtrail\'s error) is said to be one, not a JSON parse error', async () => {
  // A dev server on the wrong port: a page for every path, 404 for /missing.
  const other = createHttpServer((req, res) => {
    res.writeHead(req.url?.includes('01a22003') ? 404 : 200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>not runtrail</title>');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    const rt = new RuntrailClient({ url, startTimeoutMs: 5_000 });
    const advice = "not as a runtrail server does: is the client's url the runtrail server's, with no path (such as http://127.0.0.1:4310)?";
    // Before: SyntaxError "Unexpected token '<', "<!doctype "... is not valid JSON", naming neither the URL nor what was wrong.
    await expect(rt.listRuns()).rejects.toMatchObject({ code: 'invalid_request', message: `GET ${url}/api/v1/runs answered 200 with text/html, ${advice}` });
    // Not retried for startTimeoutMs: a wrong URL does not get better.
    await expect(rt.createRun({ name: 'nowhere' })).rejects.toMatchObject({ code: 'invalid_request', message: `POST ${url}/api/v1/runs answered 200 with text/html, ${advice}` });
    const id = '01a22003-8dc8-7235-9aef-0608e89bc08d';
    await expect(rt.getRun(id)).rejects.toMatchObject({ code: 'invalid_request', message: `GET ${url}/api/v1/runs/${id} answered 404, ${advice}` });
    const watch = watchRun(id, { url, transports: ['poll'] });
    const final = await watch.done;
    expect(final.connection).toBe('ended');
    expect(final.error).toMatchObject({ code: 'invalid_request', message: `GET ${url}/api/v1/runs/${id} answered 404, ${advice}` });
  } finally {
    other.closeAllConnections();
    await new Promise<void>((resolve) => other.close(() => resolve()));
  }
});

it("a server that does not implement POST (`python3 -m http.server`'s 501) is said to be another server at once, not retried as one briefly away", async () => {
  const other = createHttpServer((req, res) => {
    res.writeHead(req.method === 'GET' ? 200 : 501, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>Error response</title><p>Unsupported method');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    // A start timeout longer than the test's: a retried create would not answer in time.
    const rt = new RuntrailClient({ url, startTimeoutMs: 60_000 });
    const advice = "not as a runtrail server does: is the client's url the runtrail server's, with no path (such as http://127.0.0.1:4310)?";
    await expect(rt.createRun({ name: 'nowhere' })).rejects.toMatchObject({ code: 'invalid_request', message: `POST ${url}/api/v1/runs answered 501, ${advice}` });
  } finally {
    other.closeAllConnections();
    await new Promise<void>((resolve) => other.close(() => resolve()));
  }
});
