import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { EchoFilter } from './echo-filter.js';

const OUTPUT = [
  'plain line',
  '::runtrail:: {"type":"progress","data":{"done":1}}',
  ':: not the prefix',
  '::runtrail:: malformed, still not output',
  'progress 10%\rprogress 20%',
  'ünïcode ✓',
  '::runtrail',
].join('\n');
const SHOWN = ['plain line', ':: not the prefix', 'progress 10%\rprogress 20%', 'ünïcode ✓', '::runtrail'].join('\n');

/** A filter and what it has written so far, as the bytes written. */
function filtered(): { filter: EchoFilter; shown: () => Buffer } {
  const written: Buffer[] = [];
  return { filter: new EchoFilter((bytes) => written.push(Buffer.from(bytes))), shown: () => Buffer.concat(written) };
}

test('echoes everything but ::runtrail:: lines, however the output is cut into chunks', () => {
  const bytes = new TextEncoder().encode(OUTPUT);
  // Every cut point, so a prefix or a multi-byte character split across chunks is covered.
  for (let cut = 0; cut <= bytes.length; cut++) {
    const { filter, shown } = filtered();
    filter.push(bytes.subarray(0, cut));
    filter.push(bytes.subarray(cut));
    filter.end();
    expect(shown().toString(), `cut at ${cut}`).toBe(SHOWN);
  }
});

test('passes a line that is not finished yet (a prompt) through at once', () => {
  const { filter, shown } = filtered();
  filter.push(new TextEncoder().encode('Continue? [y/N] '));
  expect(shown().toString()).toBe('Continue? [y/N] ');
  filter.push(new TextEncoder().encode('y\n::run'));
  // Only a line start that may still become the prefix is held, until it cannot.
  expect(shown().toString()).toBe('Continue? [y/N] y\n');
  filter.push(new TextEncoder().encode('ning'));
  expect(shown().toString()).toBe('Continue? [y/N] y\n::running');
});

test('copies output that is not UTF-8 byte for byte (a tar stream, Latin-1), in chunks of any size', () => {
  // Random bytes hold newlines, partial prefixes and invalid UTF-8; none of their lines starts with the whole prefix.
  const binary = Buffer.concat([randomBytes(200_000), Buffer.from([0xff, 0x0a, 0x3a, 0x3a, 0x72, 0xe9, 0x0a, 0xc3])]);
  expect(binary.includes('\n::runtrail::')).toBe(false);
  for (const size of [1, 7, 4096, binary.length]) {
    const { filter, shown } = filtered();
    for (let at = 0; at < binary.length; at += size) filter.push(binary.subarray(at, at + size));
    filter.end();
    expect(shown().equals(binary), `chunks of ${size} bytes`).toBe(true);
  }
});
