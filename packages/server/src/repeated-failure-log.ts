import type { FastifyBaseLogger } from 'fastify';

/** How often a failure that keeps repeating is reported again, as a count. */
export const REPEAT_REPORT_MS = 60_000;

/**
 * A failure's message without what varies between tries of the same
 * failure: Node's network errors name the call that met them ("read
 * ECONNRESET", "write ECONNRESET", "connect ECONNRESET 127.0.0.1:5432"). With
 * the database behind a cut link the three took turns, each taken for a new
 * failure: a 12-second outage was 50 log lines, stack traces and NOT READY
 * included, instead of one each.
 */
export function failureKind(message: string): string {
  return message.replace(/\b(?:read|write|connect|getaddrinfo) (E[A-Z]+)(?: [\w.:%[\]-]+)?/g, '$1');
}

/**
 * Logs a failure that repeats as an operator wants to read it. While the
 * database is down every reaper sweep, executor claim, reconnect and request
 * fails the same way, several times a second: logged each time, a ten-minute
 * outage was about a thousand stack traces. Here the first failure is logged
 * with its error (stack included) at `level`; the same failure again only
 * as a count every REPEAT_REPORT_MS at warn; a different one in full; and,
 * for work that can say it succeeded, the recovery once at info with how
 * long it lasted. A failure after a quiet REPEAT_REPORT_MS starts a new
 * streak (work with no success to report, such as requests, still gets a
 * first line per outage).
 */
export class RepeatedFailureLog {
  private streak: { message: string; kind: string; since: number; last: number; reportedAt: number; failures: number; unreported: number } | null = null;

  constructor(
    private readonly log: FastifyBaseLogger,
    private readonly options: {
      /** The line of a failure: "reaper sweep failed". */
      failed: string;
      /** The line of the recovery: "reaper sweeps work again". */
      recovered?: string;
      level?: 'error' | 'warn';
      now?: () => number;
      reportEveryMs?: number;
    },
  ) {}

  failed(err: unknown, bindings: Record<string, unknown> = {}): void {
    const now = (this.options.now ?? Date.now)();
    const every = this.options.reportEveryMs ?? REPEAT_REPORT_MS;
    const message = err instanceof Error ? err.message : String(err);
    const kind = failureKind(message);
    const streak = this.streak;
    if (streak === null || now - streak.last >= every) {
      if (streak !== null) this.reportRepeats(streak, streak.last);
      this.streak = { message, kind, since: now, last: now, reportedAt: now, failures: 1, unreported: 0 };
      this.log[this.options.level ?? 'error']({ ...bindings, err }, this.options.failed);
      return;
    }
    streak.failures++;
    streak.last = now;
    streak.message = message;
    if (kind !== streak.kind) {
      streak.kind = kind;
      streak.reportedAt = now;
      streak.unreported = 0;
      this.log[this.options.level ?? 'error']({ ...bindings, err }, this.options.failed);
      return;
    }
    streak.unreported++;
    if (now - streak.reportedAt >= every) this.reportRepeats(streak, now, bindings);
  }

  /** The work succeeded: if it had been failing, say so once, with how long and how often. */
  succeeded(): void {
    const streak = this.streak;
    if (streak === null) return;
    this.streak = null;
    const now = (this.options.now ?? Date.now)();
    this.log.info(
      { failures: streak.failures, sinceMs: now - streak.since },
      `${this.options.recovered ?? `${this.options.failed}: recovered`} after ${streak.failures} failure(s) over ${seconds(now - streak.since)}`,
    );
  }

  private reportRepeats(streak: NonNullable<RepeatedFailureLog['streak']>, now: number, bindings: Record<string, unknown> = {}): void {
    if (streak.unreported === 0) return;
    this.log.warn(
      { ...bindings, failures: streak.failures, sinceMs: now - streak.since },
      `${this.options.failed} again, ${streak.unreported} more time(s) in the last ${seconds(now - streak.reportedAt)} (${streak.failures} in ${seconds(now - streak.since)}): ${streak.message}`,
    );
    streak.reportedAt = now;
    streak.unreported = 0;
  }
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
