import { describe, expect, it } from 'vitest';
import { LineSplitter } from './protocol-line.js';

const encode = (text: string) => new TextEncoder().encode(text);

function split(chunks: string[], maxLength: number): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line), maxLength);
  for (const chunk of chunks) splitter.push(encode(chunk));
  splitter.end();
  return lines;
}

describe('LineSplitter', () => {
  it('cuts a long line into pieces of at most maxLength whether it comes in one chunk with its newline or in many', () => {
    const long = 'x'.repeat(25);
    expect(split([`${long}\nnext\n`], 10)).toEqual(['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(5), 'next']);
    expect(split([long.slice(0, 7), long.slice(7), '\nnext'], 10)).toEqual(['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(5), 'next']);
  });

  it('never cuts between the two halves of a character outside the BMP', () => {
    const lines = split([`${'a'.repeat(9)}😀${'b'.repeat(3)}\n`], 10);
    expect(lines).toEqual(['a'.repeat(9), `😀${'b'.repeat(3)}`]);
    expect(lines.join('')).toBe(`${'a'.repeat(9)}😀bbb`);
  });

  it('drops the carriage return of a CRLF line', () => {
    expect(split(['one\r\ntwo\r\n'], 100)).toEqual(['one', 'two']);
  });
});
