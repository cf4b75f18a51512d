import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '@runtrail/protocol';
import { waitUntil } from '../leases/lease.test-kit.js';
import { RawWsClient } from '../stream/stream.test-kit.js';
import { cluster, http, stopCluster } from './cluster.test-kit.js';

/** Two runtrail processes on one PostgreSQL schema: a delete through one ends the watchers on the other. */

afterEach(stopCluster);

/** The text of an SSE response as it arrives, and whether the server closed it. */
function sseText(url: string) {
  const state = { text: '', closed: false };
  const controller = new AbortController();
  const done = (async () => {
    const res = await fetch(url, { signal: controller.signal });
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) state.text += decoder.decode(chunk as Uint8Array, { stream: true });
    state.closed = true;
  })().catch((err: unknown) => {
    if (!controller.signal.aborted) throw err;
  });
  return { state, done, abort: () => controller.abort() };
}

describe('a run deleted through another node', () => {
  it('ends the untilDeleted WebSocket and SSE watchers on A with run_not_found "was deleted" when B deletes the run', async () => {
    const c = await cluster();
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const { body: run } = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'deleted elsewhere', leaseTtlMs: 3_600_000 });
    expect((await http('POST', `${a.url}/api/v1/runs/${run.id}/finish`, { status: 'succeeded' })).status).toBe(200);

    const ws = new RawWsClient(a.wsUrl);
    const sse = sseText(`${a.url}/api/v1/runs/${run.id}/stream?after=0&untilDeleted=true`);
    try {
      await ws.opened();
      ws.send({ op: 'subscribe', runId: run.id, after: 0, untilDeleted: true });
      await waitUntil(() => ws.ended.has(run.id) && sse.state.text.includes('event: end'), { what: 'the end on both watchers on A' });

      expect((await http('DELETE', `${b.url}/api/v1/runs/${run.id}`)).status).toBe(204);
      await waitUntil(() => ws.messages.at(-1)?.type === 'error' && sse.state.closed, { what: 'the deletion through B to reach the watchers on A' });
      expect(ws.messages.at(-1)).toEqual({ type: 'error', runId: run.id, code: 'run_not_found', message: `run ${run.id} was deleted` });
      expect(sse.state.text).toContain(`event: error\ndata: ${JSON.stringify({ code: 'run_not_found', message: `run ${run.id} was deleted` })}\n\n`);
    } finally {
      ws.close();
      sse.abort();
      await sse.done;
    }
  });
});
