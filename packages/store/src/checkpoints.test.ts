import { describe, expect, it } from 'vitest';
import { checkpointPolicy, DEFAULT_CHECKPOINT_POLICY } from './checkpoints.js';

describe('checkpointPolicy', () => {
  it('takes the defaults when nothing is given', () => {
    expect(checkpointPolicy({})).toEqual(DEFAULT_CHECKPOINT_POLICY);
  });

  it('refuses an interval that is not a whole number of events >= 1 or a number of ms >= 0, naming the option', () => {
    expect(() => checkpointPolicy({ checkpointEveryEvents: 0 })).toThrow(/checkpointEveryEvents must be a whole number of events >= 1, not 0/);
    expect(() => checkpointPolicy({ checkpointEveryEvents: 2.5 })).toThrow(/checkpointEveryEvents/);
    expect(() => checkpointPolicy({ checkpointEveryMs: -1 })).toThrow(/checkpointEveryMs must be a number of milliseconds >= 0, not -1/);
    expect(checkpointPolicy({ checkpointEveryEvents: 1, checkpointEveryMs: 0 })).toEqual({ everyEvents: 1, everyMs: 0 });
  });
});
