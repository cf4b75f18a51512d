import { describe, expect, it } from 'vitest';
import type { RunEvent } from '@runtrail/protocol';
import { cancelRequestOf } from './cancel-request.js';

const request = (seq: number, ts: number, reason?: string): RunEvent => ({
  runId: 'r',
  seq,
  type: 'run.cancel_requested',
  ts,
  data: reason === undefined ? {} : { reason },
});

describe('cancelRequestOf', () => {
  it('takes the latest request the page holds, with its time', () => {
    expect(cancelRequestOf([request(3, 30, 'first'), request(9, 90, 'wrong dataset')], { cancelRequested: true, cancelReason: 'wrong dataset' })).toEqual({
      at: 90,
      reason: 'wrong dataset',
    });
    expect(cancelRequestOf([request(3, 30, '  ')], { cancelRequested: true, cancelReason: null })).toEqual({ at: 30, reason: null });
  });

  it("keeps the snapshot's reason when the request is older than every event the page holds", () => {
    expect(cancelRequestOf([], { cancelRequested: true, cancelReason: 'wrong dataset' })).toEqual({ at: null, reason: 'wrong dataset' });
    expect(cancelRequestOf([], { cancelRequested: false, cancelReason: null })).toBeNull();
  });
});
