import { describe, expect, it } from 'vitest';
import type { Run } from '@runtrail/protocol';
import { keepUnchanged } from './kept-runs.js';

const run = (id: string, seq: number, heartbeatAt: number | null = null) => ({ id, seq, heartbeatAt, labels: { team: 'a' } }) as unknown as Run;

describe('keepUnchanged', () => {
  it('a list read again keeps the object of every run that did not change, and takes the one that did', () => {
    const before = [run('c', 3), run('b', 2), run('a', 1)];
    const next = keepUnchanged([run('c', 3), run('b', 5), run('a', 1)], before);
    expect(next[0]).toBe(before[0]);
    expect(next[1]).not.toBe(before[1]);
    expect(next[1]!.seq).toBe(5);
    expect(next[2]).toBe(before[2]);
  });

  it('a change that leaves seq as it was (a heartbeat) is a change', () => {
    const before = [run('a', 1, 100)];
    expect(keepUnchanged([run('a', 1, 200)], before)[0]!.heartbeatAt).toBe(200);
  });

  it('a list read again with nothing changed is the list it was', () => {
    const before = [run('b', 2), run('a', 1)];
    expect(keepUnchanged([run('b', 2), run('a', 1)], before)).toBe(before);
  });

  it('a new run, a run gone or another order makes a new list, keeping the runs it still holds', () => {
    const before = [run('b', 2), run('a', 1)];
    const added = keepUnchanged([run('c', 1), run('b', 2), run('a', 1)], before);
    expect(added).not.toBe(before);
    expect(added[1]).toBe(before[0]);
    const gone = keepUnchanged([run('b', 2)], before);
    expect(gone).toEqual([before[0]]);
    expect(gone[0]).toBe(before[0]);
    const reordered = keepUnchanged([run('a', 1), run('b', 2)], before);
    expect(reordered).not.toBe(before);
    expect(reordered[0]).toBe(before[1]);
  });
});
