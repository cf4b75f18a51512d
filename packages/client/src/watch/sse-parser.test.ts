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
