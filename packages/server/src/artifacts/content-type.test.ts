import { describe, expect, it } from 'vitest';
import { sniffContentType } from './content-type.js';

describe('the content type of an upload that does not say', () => {
  it('is binary for bytes with control characters, though they decode as UTF-8, and for .bin', () => {
    // Before: [1, 2, 3, 4] is valid UTF-8, so it was stored as text/plain and shown as text.
    expect(sniffContentType('weights', Buffer.from([1, 2, 3, 4]))).toBe('application/octet-stream');
    expect(sniffContentType('model.bin', Buffer.from('plain words'))).toBe('application/octet-stream');
    expect(sniffContentType('blob', Buffer.from([0x41, 0x7f, 0x42]))).toBe('application/octet-stream');
  });

  it("is text for a terminal's log: tabs, CRLF, colours and progress redraws, and for UTF-8 text", () => {
    const log = 'step\t1\r\n\u001b[32mok\u001b[0m\rprogress 50%\rprogress 100%\n\b\f';
    expect(sniffContentType('output', Buffer.from(log))).toBe('text/plain; charset=utf-8');
    expect(sniffContentType('notes', Buffer.from('ünïcode — 日本語\n'))).toBe('text/plain; charset=utf-8');
    // Before: a short text's last character was cut off before decoding, so these few words were binary.
    expect(sniffContentType('greeting', Buffer.from('日本語'))).toBe('text/plain; charset=utf-8');
    // The head of a longer text may end inside a character.
    expect(sniffContentType('long', Buffer.from('日本語').subarray(0, 7))).toBe('text/plain; charset=utf-8');
    expect(sniffContentType('latin1', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b]))).toBe('application/octet-stream');
  });
});
