import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { durationOption, formatDuration, parseDuration } from './duration.js';

describe('durations on the command line', () => {
  it('takes plain milliseconds, as the flags always did, and numbers with a unit', () => {
    expect(parseDuration('1500')).toBe(1500);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2s')).toBe(2_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration(' 30s ')).toBe(30_000);
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
  });

  it('reads a bare number in the unit the flag gives (seconds for token lifetimes)', () => {
    expect(parseDuration('3600', 's')).toBe(3_600_000);
    expect(parseDuration('12h', 's')).toBe(12 * 3_600_000);
  });

  it('refuses what is not a positive length of time', () => {
    for (const text of ['', '0', '0s', '0.4', '-5', '5x', '2 days', '1e3', 's', '1.s', '10 m', 'Infinity', '99999999999999999999h']) {
      expect(parseDuration(text), text).toBeNull();
    }
  });

  it('refuses a bare number under 100 as the slip it is (`--timeout 2` meant two seconds, not 2 ms), saying what to give', () => {
    const parse = (value: string) => {
      let error = '';
      const program = new Command()
        .exitOverride()
        .configureOutput({ writeErr: (text) => (error += text) })
        .addOption(durationOption('--timeout', 'how long'))
        .action(() => undefined);
      try {
        program.parse(['--timeout', value], { from: 'user' });
      } catch (err) {
        // exitOverride throws what would have exited; the message is in `error`.
        void err;
        return error.trim();
      }
      return program.opts<{ timeout: number }>().timeout;
    };
    expect(parse('2')).toBe("error: option '--timeout <duration>' argument '2' is invalid. a bare number is milliseconds: 2 would be 2 ms. Give 2s for seconds (or 2ms if you mean it).");
    expect(parse('99')).toMatch(/99 would be 99 ms/);
    // What anyone means by these is taken as written.
    expect(parse('2ms')).toBe(2);
    expect(parse('2s')).toBe(2_000);
    expect(parse('100')).toBe(100);
    expect(parse('1500')).toBe(1_500);
  });

  it('shows a default in the largest unit that divides it', () => {
    expect(formatDuration(30_000)).toBe('30s');
    expect(formatDuration(600_000)).toBe('10m');
    expect(formatDuration(7_200_000)).toBe('2h');
    expect(formatDuration(86_400_000)).toBe('1d');
    expect(formatDuration(1_500)).toBe('1500ms');
  });
});
