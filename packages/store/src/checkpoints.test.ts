import { describe, expect, it } from 'vitest';
import { checkpointPolicy, DEFAULT_CHECKPOINT_POLICY } from './checkpoints.js';

describe('checkpointPolicy', () => {
  it('takes the defaults when nothing is given', () => {
    expect(checkpointPolicy({})).toEqual(DEFAULT_CHECKPOINT_POLICY);
  });

  it('refuses an interval that is not a whole number of events >= 1 or a number of ms >= 0, naming the option', () => {
    expect(() => checkpointPolicy({ checkpointEveryEvents: 0 })).toThrow(/checkpointEveryEvents must be a whole number of events >= 1, not 0/);
    expect(() => checkpointPolicy({ checkpointEveryEvents: 2.5 })).toThrow(/checkpointEveryEvents/);
    expect(() => checkpointPolicy({ checkpointMaxEvents: 0, checkpointEveryEvents: 1 })).toThrow(/checkpointMaxEvents must be a whole number/);
    expect(() => checkpointPolicy({ checkpointMaxEvents: 10, checkpointEveryEvents: 20 })).toThrow(
      /checkpointMaxEvents \(10\) must be >= checkpointEveryEvents \(20\)/,
    );
    expect(() => checkpointPolicy({ checkpointEveryMs: -1 })).toThrow(/checkpointEveryMs must be a number of milliseconds >= 0, not -1/);
    expect(checkpointPolicy({ checkpointEveryEvents: 1, checkpointEveryMs: 0 })).toEqual({ everyEvents: 1, maxEvents: 10_000, everyMs: 0 });
    // A minimum above the default maximum raises the maximum with it.
    expect(checkpointPolicy({ checkpointEveryEvents: 20_000 })).toMatchObject({ everyEvents: 20_000, maxEvents: 20_000 });
  });
});
