import { LINE_PREFIX } from './protocol-line.js';

const PREFIX = Buffer.from(LINE_PREFIX);
const NEWLINE = 0x0a;

/**
 * A subprocess's output as a person should see it: everything it printed,
 * as it arrives (a prompt or a `\r` progress bar without its newline
 * included), except its `::runtrail::` lines, which are events, not output.
 * Only the start of a line is held back, and only while it could still be
 * the prefix.
 *
 * It works on bytes and passes them on as they came: output that is not
 * UTF-8 (a tar stream on stdout, Latin-1 text) is copied unchanged, where
 * decoding it would have replaced bytes with U+FFFD.
 */
export class EchoFilter {
  /** Bytes of the current line's start held back: always the prefix's first `held` bytes. */
  private held = 0;
  private state: 'line-start' | 'output' | 'protocol' = 'line-start';

  constructor(private readonly write: (bytes: Buffer) => void) {}

  push(chunk: Uint8Array): void {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'line-start') {
        // Hold bytes until they differ from the prefix, or complete it.
        while (i < chunk.length && this.held < PREFIX.length && chunk[i] === PREFIX[this.held]) {
          this.held++;
          i++;
        }
        if (this.held === PREFIX.length) {
          this.held = 0;
          this.state = 'protocol';
        } else if (i < chunk.length) {
          if (this.held > 0) out.push(PREFIX.subarray(0, this.held));
          this.held = 0;
          this.state = 'output';
        }
        continue;
      }
      const newline = chunk.indexOf(NEWLINE, i);
      const end = newline < 0 ? chunk.length : newline + 1;
      if (this.state === 'output') out.push(chunk.subarray(i, end));
      if (newline >= 0) this.state = 'line-start';
      i = end;
    }
    if (out.length > 0) this.write(Buffer.concat(out));
  }

  /** The stream ended: a held start that never became a protocol line is output. */
  end(): void {
    if (this.held > 0) this.write(PREFIX.subarray(0, this.held));
    this.held = 0;
    this.state = 'line-start';
  }
}
