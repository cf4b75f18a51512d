import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTerminalType, type Run } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';
import { tempDir } from './lease.test-kit.js';

/**
 * Exactly one terminal event per run (field note 7), whoever races to write
 * it: owners finishing and users cancelling (reapers racing owners on
 * separate connections: reaper-race.test.ts).
 */

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir('runtrail-race-');
});
afterEach(() => dir.remove());

type Attempt = { kind: 'finish' | 'cancel'; status: number; body: { status?: string; error?: { code: string; message: string } } };

describe('one terminal event per run', () => {
  let server: RunningServer;
  beforeEach(async () => {
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', node: 'race' });
  });
  afterEach(() => server.close());

  async function post<T = Attempt['body']>(path: string, body: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  it('50 concurrent finishes and cancels on one run write exactly one terminal event; every losing finish gets 409 naming the winner', async () => {
    for (let round = 0; round < 8; round++) {
      const created = await post<Run>('/api/v1/runs', { name: `race-${round}`, owner: { kind: 'producer', node: 't', id: 'p' } });
      const id = created.body.id;
      const statuses = ['succeeded', 'failed', 'cancelled'] as const;
      const attempts: Attempt[] = await Promise.all(
        Array.from({ length: 50 }, async (_, i): Promise<Attempt> => {
          if (i % 4 === 3) return { kind: 'cancel', ...(await post(`/api/v1/runs/${id}/cancel`, { reason: `cancel ${i}` })) };
          const status = statuses[i % 3]!;
          const body = status === 'failed' ? { status, error: { message: `failure ${i}` } } : { status };
          return { kind: 'finish', ...(await post(`/api/v1/runs/${id}/finish`, body)) };
        }),
      );
      const events = (await (await fetch(`${server.url}/api/v1/runs/${id}/events?after=0`)).json()) as { events: Array<{ type: string }> };
      const terminal = events.events.filter((e) => isTerminalType(e.type));
      expect(terminal).toHaveLength(1);
      const run = (await (await fetch(`${server.url}/api/v1/runs/${id}`)).json()) as Run;
      expect(`run.${run.status}`).toBe(terminal[0]!.type);

      const finishes = attempts.filter((a) => a.kind === 'finish');
      const won = finishes.filter((a) => a.status === 200);
      expect(won).toHaveLength(1);
      for (const lost of finishes.filter((a) => a.status !== 200)) {
        expect(lost.status).toBe(409);
        expect(lost.body.error?.code).toBe('run_already_terminal');
        expect(lost.body.error?.message).toContain(`already ended ${run.status}`);
      }
      // A cancel either was recorded before the end (200) or met the end (409); never a second end.
      for (const c of attempts.filter((a) => a.kind === 'cancel')) expect([200, 409]).toContain(c.status);
    }
  });
});
