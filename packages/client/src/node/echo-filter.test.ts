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

test('echoes everything but ::runtrail:: lines, however the output is cut into chunks', () => {
  const bytes = new TextEncoder().encode(OUTPUT);
  // Every cut point, so a prefix or a multi-byte character split across chunks is covered.
  for (let cut = 0; cut <= bytes.length; cut++) {
    let shown = '';
    const filter = new EchoFilter((text) => (shown += text));
    filter.push(bytes.subarray(0, cut));
    filter.push(bytes.subarray(cut));
    filter.end();
    expect(shown, `cut at ${cut}`).toBe(SHOWN);
  }
});

test('passes a line that is not finished yet (a prompt) through at once', () => {
  let shown = '';
  const filter = new EchoFilter((text) => (shown += text));
  filter.push(new TextEncoder().encode('Continue? [y/N] '));
  expect(shown).toBe('Continue? [y/N] ');
  filter.push(new TextEncoder().encode('y\n::run'));
  // Only a line start that may still become the prefix is held, until it cannot.
  expect(shown).toBe('Continue? [y/N] y\n');
  filter.push(new TextEncoder().encode('ning'));
  expect(shown).toBe('Continue? [y/N] y\n::running');
});
