import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { RunStore, StoreReadiness } from '@runtrail/store';
import { Readiness } from './health.js';

describe('Readiness', () => {
  it('logs an outage once however the failing call is named, and its end once with how long it lasted', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    // What a PostgreSQL store answers behind a cut link: the same outage, met by whichever call ran into it.
    const calls = ['read ECONNRESET', 'connect ECONNRESET 127.0.0.1:47399', 'write ECONNRESET'];
    let answer: StoreReadiness = { ready: true, reasons: [] };
    const store = { kind: 'postgres', readiness: async () => answer } as unknown as RunStore;
    const readiness = new Readiness(store, pino({ level: 'info' }, sink), 1000);
    for (let i = 0; i < 30; i++) {
      answer = { ready: false, reasons: [`the database is unavailable (${calls[i % 3]}); retry shortly`] };
      expect((await readiness.check()).ready).toBe(false);
    }
    answer = { ready: true, reasons: [] };
    await readiness.check();
    expect(lines.map((l) => l.msg)).toEqual([
      'NOT READY: writes are refused with 503: the database is unavailable (read ECONNRESET); retry shortly',
      expect.stringMatching(/^ready again after \d+\.\d s: the store takes writes$/),
    ]);
    expect(lines[1]).toMatchObject({ level: 40, store: 'postgres', notReadyMs: expect.any(Number) });
  });
});
