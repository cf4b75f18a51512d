import { expect, test } from 'vitest';
import { SseParser } from './sse-parser.js';

test('records split across chunks, CRLF and CR line ends, comments and multi-line data parse like a browser EventSource', () => {
  const p = new SseParser();
  const text = 'retry: 1000\r\n\r\n: ping\n\nid: 1\nevent: run-event\ndata: {"seq":1}\n\nid: 2\revent: end\rdata: a\rdata: b\r\r\n';
  const out = [];
  // Feed it one character at a time: the worst case for chunk boundaries (a CR then its LF apart).
  for (const ch of text) out.push(...p.push(ch));
  expect(out).toEqual([
    { event: 'run-event', data: '{"seq":1}', id: '1' },
    { event: 'end', data: 'a\nb', id: '2' },
  ]);
});

test('a record whose blank line ends with a CR at the end of a chunk is delivered with that chunk, not held until the next one', () => {
  // Before, a CR last in the buffer waited for the next chunk (it may be half a CRLF): a
  // stream that then went quiet kept the record back until its next keepalive.
  const p = new SseParser();
  expect(p.push('event: end\rdata: done\r\r')).toEqual([{ event: 'end', data: 'done', id: null }]);
  // The LF that completes that CRLF is no second line end.
  expect(p.push('\ndata: next\n\n')).toEqual([{ event: 'message', data: 'next', id: null }]);
});

test('a stream cut into two chunks anywhere parses as it does whole, long lines and many short ones alike', () => {
  const long = 'x'.repeat(5000);
  const text = `id: 7\r\nevent: run-event\r\ndata: ${long}\r\n\r\n: ping\n\n${'data: a\n'.repeat(50)}\ndata: ${long}\rdata: b\r\r`;
  const whole = new SseParser().push(text);
  expect(whole).toHaveLength(3);
  for (let cut = 0; cut <= text.length; cut += 7) {
    const p = new SseParser();
    expect([...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))], `cut at ${cut}`).toEqual(whole);
  }
});
