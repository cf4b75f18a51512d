import { describe, expect, it } from 'vitest';
import { formatTime, formatZone } from '../format.js';
import { queuedWhyText } from './QueuedWhy.js';

describe('queuedWhyText', () => {
  const at = Date.UTC(2026, 10, 28, 14, 5, 9);
  const none = { startable: ['other'], queuedOrphanTimeoutMs: 600_000, endsAt: new Map<string, number>(), nodes: [] };

  it('gives the time the run ends, with its zone, once the server has started counting', () => {
    expect(queuedWhyText('resize', { ...none, endsAt: new Map([['resize', at]]) })).toBe(
      `Queued: no live node defines handler resize. It starts if a node that defines it comes up; if none does by ${formatTime(at)} ${formatZone(at)}, it ends failed / orphaned (the server's queuedOrphanTimeoutMs, 10\u00a0m\u00a00\u00a0s, from when it found none).`,
    );
  });

  it('gives the timeout from when the server finds none, before its reaper has looked', () => {
    expect(queuedWhyText('resize', none)).toBe(
      "Queued: no live node defines handler resize. It starts if a node that defines it comes up; if none does within 10\u00a0m\u00a00\u00a0s (the server's queuedOrphanTimeoutMs) of the server finding none, it ends failed / orphaned.",
    );
  });

  it('says the run waits for ever when the server never ends such runs', () => {
    expect(queuedWhyText('resize', { ...none, queuedOrphanTimeoutMs: 0 })).toBe(
      'Queued: no live node defines handler resize. It starts if a node that defines it comes up; the server lets it wait for one for ever (its queuedOrphanTimeoutMs is 0).',
    );
  });

  it('says it waits for a free slot when a live node defines the handler', () => {
    expect(queuedWhyText('other', none)).toBe('Queued: a live node defines handler other; the run waits for a free slot on one.');
  });
});
