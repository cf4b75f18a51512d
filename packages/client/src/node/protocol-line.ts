import { EventInput, validateEventData } from '@runtrail/protocol';

/** A subprocess reports events by printing lines that start with this. */
export const LINE_PREFIX = '::runtrail::';

export type ParsedLine =
  | { kind: 'output' }
  | { kind: 'event'; type: string; data: unknown }
  | { kind: 'invalid'; reason: string };

/**
 * Read one output line: plain output, an event (`::runtrail:: {"type": …,
 * "data": …}`, checked against the same schemas as an HTTP append), or a
 * protocol line that is wrong, with the reason. Never throws: a script's
 * typo must show up in the run's log, not crash the runner.
 */
export function parseLine(line: string): ParsedLine {
  if (!line.startsWith(LINE_PREFIX)) return { kind: 'output' };
  const text = line.slice(LINE_PREFIX.length).trim();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { kind: 'invalid', reason: `not JSON (${(err as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'invalid', reason: 'expected an object {"type": ..., "data": ...}' };
  }
  const { type, data } = value as { type?: unknown; data?: unknown };
  const envelope = EventInput.safeParse({ type, data });
  if (!envelope.success) {
    const issue = envelope.error.issues[0];
    return { kind: 'invalid', reason: `${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'invalid'}` };
  }
  // The run's lifecycle (start, cancel, stall, end) belongs to the runner and
  // the server; a script reports its work and ends by exiting.
  if (envelope.data.type.startsWith('run.')) {
    return { kind: 'invalid', reason: `${envelope.data.type} cannot be sent from a subprocess; its exit code ends the run` };
  }
  const event = { type: envelope.data.type, data: envelope.data.data ?? {} };
  const issues = validateEventData([event], 'event');
  if (issues.length > 0) {
    return { kind: 'invalid', reason: issues.map((i) => `${i.path.replace(/^event\[0\]\./, '')}: ${i.message}`).join('; ') };
  }
  return { kind: 'event', type: event.type, data: event.data };
}

/**
 * Splits a byte stream into lines with a bounded buffer: a "line" longer
 * than `maxLength` (a progress bar drawn with \r, a binary blob) is cut into
 * pieces instead of growing memory without limit.
 */
export class LineSplitter {
  private partial = '';
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLength = 8192,
  ) {}

  push(chunk: Uint8Array): void {
    this.take(this.decoder.decode(chunk, { stream: true }));
  }

  end(): void {
    this.take(this.decoder.decode());
    if (this.partial.length > 0) this.emit(this.partial);
    this.partial = '';
  }

  private take(text: string): void {
    let rest = this.partial + text;
    let newline = rest.indexOf('\n');
    while (newline >= 0) {
      this.emit(rest.slice(0, newline));
      rest = rest.slice(newline + 1);
      newline = rest.indexOf('\n');
    }
    while (rest.length > this.maxLength) {
      const cut = pieceEnd(rest, this.maxLength);
      this.emit(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    this.partial = rest;
  }

  /** A line, in pieces of at most maxLength (a long line may come whole in one chunk, newline included). */
  private emit(whole: string): void {
    let line = whole.endsWith('\r') ? whole.slice(0, -1) : whole;
    while (line.length > this.maxLength) {
      const cut = pieceEnd(line, this.maxLength);
      this.onLine(line.slice(0, cut));
      line = line.slice(cut);
    }
    this.onLine(line);
  }
}

/** Where to cut `text` at most `max` UTF-16 units in, never between the two halves of a surrogate pair. */
function pieceEnd(text: string, max: number): number {
  const code = text.charCodeAt(max - 1);
  return code >= 0xd800 && code <= 0xdbff && max > 1 ? max - 1 : max;
}
