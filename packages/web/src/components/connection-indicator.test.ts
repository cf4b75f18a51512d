import { describe, expect, it } from 'vitest';
import { connectionShown } from './ConnectionIndicator.js';

describe('connectionShown', () => {
  it('says a live stream of an ended run is loading its log, not that the run is live', () => {
    expect(connectionShown('live', true)).toEqual({ dot: 'connecting', text: 'loading its log…' });
    expect(connectionShown('ended', true)).toEqual({ dot: 'ended', text: 'ended' });
    expect(connectionShown('live', false)).toEqual({ dot: 'live', text: 'live' });
    expect(connectionShown('reconnecting', true)).toEqual({ dot: 'reconnecting', text: 'reconnecting…' });
  });
});
