/** One SSE record (the fields runtrail uses). */
export interface SseRecord {
  event: string;
  data: string;
  id: string | null;
}

/**
 * Incremental text/event-stream parser (the WHATWG rules runtrail needs:
 * `event:`, `data:` (joined by newlines), `id:`, comments, CRLF/LF/CR line
 * ends, records split across chunks). Used over fetch() so the same code
 * works in browsers and in Node, which has no EventSource.
 */
export class SseParser {
  /**
   * The current line's text so far, one piece per chunk: joined once its
   * line ends. Searching one growing buffer from its start on every chunk
   * took time quadratic in a line's length (a 512 KiB event in 16 KiB
   * chunks was rescanned 32 times, and copied as often).
   */
  private pending: string[] = [];
  /** The last chunk ended with a CR: an LF first in the next is the rest of that CRLF, not another line end. */
  private afterCr = false;
  private event = '';
  private data: string[] = [];
  private id: string | null = null;

  push(text: string): SseRecord[] {
    const out: SseRecord[] = [];
    if (text === '') return out;
    let start = 0;
    if (this.afterCr) {
      this.afterCr = false;
      if (text.startsWith('\n')) start = 1;
    }
    // Each searched for again only once passed: a chunk of many lines without a CR is not scanned to its end for one per line.
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    while (lf !== -1 || cr !== -1) {
      const end = cr !== -1 && (lf === -1 || cr < lf) ? cr : lf;
      this.line(this.completed(text.slice(start, end)), out);
      start = end + 1;
      if (end === cr) {
        if (start === text.length) this.afterCr = true;
        else if (text.charCodeAt(start) === 10) start++;
      }
      if (lf !== -1 && lf < start) lf = text.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
    }
    if (start < text.length) this.pending.push(text.slice(start));
    return out;
  }

  /** The whole line that `tail` ends. */
  private completed(tail: string): string {
    if (this.pending.length === 0) return tail;
    this.pending.push(tail);
    const line = this.pending.join('');
    this.pending = [];
    return line;
  }

  private line(line: string, out: SseRecord[]): void {
    if (line === '') {
      if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
  }
}
