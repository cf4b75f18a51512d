import { watchRun, type RunWatchState, type WebSocketConstructor } from '@runtrail/client';
import { RuntrailError, callsInFlight, hasCalls } from '@runtrail/protocol';
import { formatDuration } from './duration.js';
import { CLI_TOKEN_HINT } from './options.js';
import { terminalSafe } from './output.js';

export interface FollowOptions {
  onEvent?: (line: string) => void;
  /** Fail when the server has not answered for this long (default: keep trying). */
  giveUpAfterMs?: number;
  /** Draw the status line here, under other output printed through it (on a TTY). */
  live?: LiveLine;
  /** Where the status line goes (default stdout; stderr when stdout is kept for a --json answer). */
  out?: NodeJS.WriteStream;
  /**
   * What the line says instead of the run's progress (`cancel --wait`: what
   * it waits for): redrawn on a TTY as it changes, else printed once.
   */
  waitingLine?: (state: RunWatchState, tty: boolean) => string;
}

/**
 * Follow a run in the terminal until it ends: one status line redrawn in
 * place on a TTY (a line per change otherwise), then the final state.
 */
export async function followRun(
  server: { url: string; token?: string | undefined },
  runId: string,
  options: FollowOptions = {},
): Promise<RunWatchState> {
  const { url } = server;
  // --events prints every event from the first: a replay from 0 (by default a long run's watcher reads only its latest events).
  const from = options.onEvent ? { after: 0 } : {};
  // Loaded here, not at the top: exec imports this module for its line, which only a terminal shows.
  const { default: WebSocket } = await import('ws');
  // The watcher reconnects for ever by default (right for a dashboard); a command must end: a
  // server silent for giveUpAfterMs stops it with an error.
  const watch = watchRun(runId, {
    url,
    token: server.token,
    tokenHint: CLI_TOKEN_HINT,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    ...from,
    ...(options.giveUpAfterMs !== undefined ? { giveUpAfterMs: options.giveUpAfterMs } : {}),
  });
  const out = options.out ?? process.stdout;
  const tty = out.isTTY === true;
  let lastLine = '';
  let printedSeq = 0;
  let saidLost = false;
  const draw = () => {
    const state = watch.getState();
    // Stopped by an error (no such run, no access) before the run's end: the caller says it; a
    // status line "ended" would read as though the run had.
    if (state.connection === 'ended' && state.error && !state.snapshot.terminal) return;
    if (options.onEvent) {
      // No status line with --events: a lost server is said on stderr, once per loss, naming it.
      const lost = state.connection === 'reconnecting';
      if (lost && !saidLost) process.stderr.write(`runtrail: reconnecting to ${url}${state.error ? ` (${cut(state.error.message)})` : ''}\n`);
      else if (!lost && saidLost && state.connection !== 'ended') process.stderr.write(`runtrail: ${url} answers again\n`);
      saidLost = lost;
      // Up to the last event printed, not state.seq: replaying from 0, seq shows the stored
      // snapshot's (the run's end) before its events arrive, which skipped every one of them.
      for (const event of state.events) {
        if (event.seq <= printedSeq) continue;
        options.onEvent(`${event.seq} ${event.type} ${JSON.stringify(event.data)}`);
        printedSeq = event.seq;
      }
      return;
    }
    const line = options.waitingLine ? terminalSafe(options.waitingLine(state, tty)) : statusLine(state, url);
    // A log file gets a line per phase, status or 10% step, not per event; a wait, one line.
    const key = tty ? line : options.waitingLine ? 'waiting' : coarseKey(state);
    if (key === lastLine) return;
    lastLine = key;
    if (tty && options.live) options.live.draw(line);
    else out.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  };
  const unsubscribe = watch.subscribe(draw);
  let final: RunWatchState;
  try {
    final = await watch.done;
  } finally {
    unsubscribe();
  }
  if (final.error && final.connection === 'ended' && !final.snapshot.terminal) {
    watch.close();
    const details = final.error.details as { reason?: string; problem?: string } | undefined;
    if (details?.reason === 'gave_up') {
      // The option as this command's user gives it.
      throw new RuntrailError('unavailable', `no answer from ${url} for ${formatDuration(options.giveUpAfterMs ?? 0)} (${String(details.problem)}); gave up (--give-up-after)`);
    }
    throw final.error;
  }
  draw();
  if (tty && options.live) options.live.end();
  else if (tty && !options.onEvent) out.write('\n');
  watch.close();
  return final;
}

const BAR_WIDTH = 24;

function coarseKey(state: RunWatchState): string {
  const s = state.snapshot;
  // A run that has ended: how the stream stands is no news (its end is printed once: not again as the
  // stream opens on a run that ended before the tail, nor as "(ended)" when it closes).
  const connection = s.terminal ? 'over' : state.connection;
  return `${s.terminal?.status ?? state.run?.status}|${s.phase}|${Math.floor((s.progress?.percent ?? 0) / 10)}|${connection}`;
}

/** `url`: the server, named while the line waits for it (else a user sees only "reconnecting" for --give-up-after). */
export function statusLine(state: RunWatchState, url?: string): string {
  const s = state.snapshot;
  const percent = s.progress?.percent ?? null;
  const filled = percent === null ? 0 : Math.round((percent / 100) * BAR_WIDTH);
  const bar = percent === null ? ' '.repeat(BAR_WIDTH) : '#'.repeat(filled) + '.'.repeat(BAR_WIDTH - filled);
  const pct = percent === null ? '  -' : `${percent.toFixed(0).padStart(3)}%`;
  const status = s.terminal?.status ?? state.run?.status ?? state.connection;
  const phase = s.phase ? ` ${s.phase}` : '';
  const c = s.counters;
  // The count and the producer's words ("3/10 three of ten"): a crawl of unknown total has no percent, only these.
  const p = s.progress;
  const told = p ? `  ${p.done}${p.total === null ? '' : `/${p.total}`}${p.message ? ` ${p.message}` : ''}` : '';
  // A command or a parent makes no calls: no counters, as `runs ls` and the dashboard show it, not a row of zeros.
  const calls = hasCalls(s) ? `  ok ${c.ok}  failed ${c.failed}  retries ${c.retries}  in flight ${callsInFlight(s)}` : '';
  // Said only while the run goes on: "(live)" or "(connecting to …)" beside a run that has ended read as if it had not.
  const connection = s.terminal ? '' : `  (${url === undefined ? state.connection : connectionText(state, url)})`;
  return terminalSafe(`[${bar}] ${pct} ${status}${phase}${told}${calls}${connection}`);
}

/** The watcher's connection as a status line says it, naming the server while it waits for it. */
export function connectionText(state: RunWatchState, url: string): string {
  const waiting = state.connection === 'connecting' || state.connection === 'reconnecting';
  return waiting ? `${state.connection} to ${url}${state.error ? `: ${cut(state.error.message)}` : ''}` : state.connection;
}

/** An error message short enough for a status line. */
function cut(message: string): string {
  return message.length > 80 ? `${message.slice(0, 79)}…` : message;
}

/**
 * A status line kept at the bottom of a terminal while other output scrolls
 * above it (`runtrail exec` echoing its command). Output is printed through
 * `print`, which clears the line, writes, and redraws it once the output
 * ends a line; a line that is not finished (a prompt) is left alone until it is.
 */
export class LiveLine {
  private line = '';
  /** Whether the output so far ended a line, so the status line owns the current one. */
  private atLineStart = true;

  constructor(private readonly terminal: NodeJS.WriteStream) {}

  draw(line: string): void {
    // Cut to the terminal's width: a wrapped line could not be cleared with \r. A terminal whose
    // size was never set says 0 columns (`script -qc` with no terminal of its own, `docker run -t`,
    // a serial console): 80 then, as when it says nothing, or every line would be cut to "…".
    const width = this.terminal.columns || 80;
    this.line = line.length >= width ? `${line.slice(0, Math.max(0, width - 2))}…` : line;
    if (this.atLineStart) this.terminal.write(`\r\x1b[2K${this.line}`);
  }

  print(to: NodeJS.WriteStream, output: string | Uint8Array): void {
    if (output.length === 0) return;
    if (this.atLineStart && this.line) this.terminal.write('\r\x1b[2K');
    to.write(output);
    this.atLineStart = typeof output === 'string' ? output.endsWith('\n') : output[output.length - 1] === 0x0a;
    if (this.atLineStart && this.line) this.terminal.write(this.line);
  }

  /** Leave the last status line in place and move below it. */
  end(): void {
    if (!this.line) return;
    // After an unfinished output line, on a line of its own.
    this.terminal.write(`${this.atLineStart ? '' : '\n'}\r\x1b[2K${this.line}\n`);
    this.line = '';
    this.atLineStart = true;
  }
}
