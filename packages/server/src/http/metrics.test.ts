import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../start.js';
import { tempDir } from '../../../../test-support/index.js';

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;

beforeEach(async () => {
  dir = tempDir();
  server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
});
afterEach(async () => {
  await server.close();
  dir.remove();
});

const metric = (text: string, line: string) => {
  const found = text.split('\n').find((l) => l.startsWith(line));
  return found === undefined ? undefined : Number(found.slice(line.length).trim());
};

describe('/metrics', () => {
  it('counts committed events, created runs and ended runs by status and kind, in Prometheus text', async () => {
    const post = (path: string, body: unknown) =>
      fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const run = (await (await post('/api/v1/runs', { name: 'measured' })).json()) as { id: string };
    await post(`/api/v1/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: 1 } }, { type: 'log', data: { level: 'info', message: 'hi' } }] });
    // A rejected batch commits nothing and must count nothing.
    expect((await post(`/api/v1/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: -1 } }] })).status).toBe(400);
    await post(`/api/v1/runs/${run.id}/finish`, { status: 'failed', error: { kind: 'timeout', message: 'too slow' } });

    const response = await fetch(`${server.url}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    expect(metric(text, 'runtrail_events_appended_total')).toBe(3);
    expect(metric(text, 'runtrail_runs_created_total')).toBe(1);
    expect(metric(text, 'runtrail_runs_ended_total{status="failed",kind="timeout"}')).toBe(1);
    expect(text).toContain('runtrail_stream_connections{transport="ws"} 0');
    expect(text).toContain('runtrail_process_resident_memory_bytes');
  });
});
