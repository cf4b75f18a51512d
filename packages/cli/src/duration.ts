import { InvalidArgumentError, Option } from 'commander';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

/**
 * A length of time as people type it: a bare number in the flag's own unit
 * (`1500`: milliseconds, what these flags always took; seconds for
 * `tokens create --expires-in`), or a number with a unit, `500ms`, `1.5s`,
 * `10m`, `2h`, `30d`. In milliseconds; null when the text is none of these
 * or not at least 1 ms.
 */
export function parseDuration(text: string, bareUnit: Unit = 'ms'): number | null {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return null;
  const ms = Math.round(Number(match[1]) * UNIT_MS[(match[2] as Unit | undefined) ?? bareUnit]);
  return ms >= 1 && Number.isSafeInteger(ms) ? ms : null;
}

/** How a duration in milliseconds is shown in help: `30s` rather than `30000`. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

/** The smallest bare number a duration flag takes as milliseconds without a unit (see durationOption). */
const BARE_MS_AT_LEAST = 100;

/** The bounds a duration flag's value must keep: the API's own, read from its schema (a zod number's minValue and maxValue). */
export interface DurationRange {
  minValue: number | null;
  maxValue: number | null;
}

/**
 * A flag taking a duration, parsed when the command line is read: a wrong
 * value is a usage error before anything is done (no run is created for a
 * command that will not start). The action gets milliseconds. With `range`,
 * a value outside it is refused in the flag's words ("give from 1s to 1d"),
 * not by the server naming its field in milliseconds (leaseTtlMs).
 */
export function durationOption(flag: string, description: string, defaultMs?: number, range?: DurationRange): Option {
  const option = new Option(`${flag} <duration>`, description).argParser((value: string) => {
    const ms = parseDuration(value);
    if (ms === null) throw new InvalidArgumentError(`give milliseconds (1500) or a number with a unit (500ms, 30s, 10m, 2h, 30d), more than 0.`);
    // `timeout 2` is two seconds to anyone who has used timeout(1); here a bare number is
    // milliseconds, and `--timeout 2` killed the command at once. Under 100 it is taken for that slip.
    if (ms < BARE_MS_AT_LEAST && /^\s*\d+\s*$/.test(value)) {
      throw new InvalidArgumentError(`a bare number is milliseconds: ${value.trim()} would be ${ms} ms. Give ${value.trim()}s for seconds (or ${value.trim()}ms if you mean it).`);
    }
    const [min, max] = [range?.minValue ?? 1, range?.maxValue ?? Number.MAX_SAFE_INTEGER];
    if (ms < min || ms > max) throw new InvalidArgumentError(`give from ${formatDuration(min)} to ${formatDuration(max)}.`);
    return ms;
  });
  return defaultMs === undefined ? option : option.default(defaultMs, formatDuration(defaultMs));
}

/** Help text a command with <duration> flags shows once under its options (`.addHelpText('after', …)`). */
export const DURATION_HELP = '\nA <duration> is milliseconds (1500) or a number with a unit: 500ms, 30s, 10m, 2h, 30d.';
