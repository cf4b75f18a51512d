import { LINE_PREFIX } from './protocol-line.js';

/**
 * A subprocess's output as a person should see it: everything it printed,
 * as it arrives (a prompt or a `\r` progress bar without its newline
 * included), except its `::runtrail::` lines, which are events, not output.
 * Only the start of a line is held back, and only while it could still be
 * the prefix.
 */
export class EchoFilter {
  /** The start of the current line, held while it may still turn out to be a protocol line. */
  private held = '';
  private state: 'line-start' | 'output' | 'protocol' = 'line-start';
  private readonly decoder = new TextDecoder();

  constructor(private readonly write: (text: string) => void) {}

  push(chunk: Uint8Array): void {
    this.take(this.decoder.decode(chunk, { stream: true }));
  }

  /** The stream ended: a held start that never became a protocol line is output. */
  end(): void {
    this.take(this.decoder.decode());
    if (this.held) this.write(this.held);
    this.held = '';
    this.state = 'line-start';
  }

  private take(text: string): void {
    let out = '';
    let i = 0;
    while (i < text.length) {
      if (this.state === 'line-start') {
        // Hold characters until they differ from the prefix, or complete it.
        while (i < text.length && this.held.length < LINE_PREFIX.length && text[i] === LINE_PREFIX[this.held.length]) {
          this.held += text[i];
          i++;
        }
        if (this.held.length === LINE_PREFIX.length) {
          this.held = '';
          this.state = 'protocol';
        } else if (i < text.length) {
          out += this.held;
          this.held = '';
          this.state = 'output';
        }
        continue;
      }
      const newline = text.indexOf('\n', i);
      const end = newline < 0 ? text.length : newline + 1;
      if (this.state === 'output') out += text.slice(i, end);
      if (newline >= 0) this.state = 'line-start';
      i = end;
    }
    if (out) this.write(out);
  }
}
