import { describe, expect, it } from 'vitest';
import type { RunEvent } from '@runtrail/protocol';
import { compactEventJson, eventBody, eventJson, eventTextOf } from './event-text.js';

describe('compactEventJson', () => {
  const runId = 'run "quoted" é';
  const event: RunEvent = { runId, seq: 7, type: 'x.q"\\', ts: 1_700_000_000_000, data: { s: 'a\u2028b', n: [1, null] }, id: 'id-1' };
  const { runId: _inTheFrame, ...compact } = event;

  it('is the stored body of a text eventJson made', () => {
    const body = eventBody(event.seq, event.type, event.ts, JSON.stringify(event.data), event.id);
    const json = eventJson(runId, body);
    expect(JSON.parse(json)).toEqual(event);
    expect(compactEventJson(runId)(json)).toBe(body);
    expect(JSON.parse(compactEventJson(runId)(json))).toEqual(compact);
  });

  it('drops the runId of a text whose keys come in another order', () => {
    const reordered = eventTextOf({ seq: event.seq, type: event.type, ts: event.ts, data: event.data, id: event.id, runId } as RunEvent).json;
    expect(reordered.startsWith('{"seq"')).toBe(true);
    expect(JSON.parse(compactEventJson(runId)(reordered))).toEqual(compact);
    expect(compactEventJson(runId)(reordered)).not.toContain('runId');
  });
});
