import { expect, test } from 'vitest';
import { visibleName, visibleText } from './visible-text.js';

test('a direction override shows as a marker and no longer reorders the text after it', () => {
  const shown = visibleText('rtl \u202Egnp.exe\u202C tail');
  expect(shown).toBe('rtl ⟨U+202E⟩gnp.exe⟨U+202C⟩ tail');
  expect(shown).not.toMatch(/[\u202A-\u202E\u2066-\u2069]/);
});

test('every embedding, override and isolate is shown, and nothing else is touched', () => {
  const controls = ['\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069'];
  expect(visibleText(controls.join(''))).toBe('⟨U+202A⟩⟨U+202B⟩⟨U+202C⟩⟨U+202D⟩⟨U+202E⟩⟨U+2066⟩⟨U+2067⟩⟨U+2068⟩⟨U+2069⟩');
  // Right-to-left text itself, emoji and the neighbours of the range stay as they are.
  for (const text of ['שלום עולם', 'مرحبا', 'loss 📉', '\u2029 \u2065\u206A', 'plain']) expect(visibleText(text)).toBe(text);
});

test('a name that starts or ends with white space is quoted, so "x.txt " is not read as "x.txt"', () => {
  expect(visibleName('x.txt ')).toBe('“x.txt ”');
  expect(visibleName(' x.txt')).toBe('“ x.txt”');
  expect(visibleName('x y.txt')).toBe('x y.txt');
  expect(visibleName('a\u202Eb')).toBe('a⟨U+202E⟩b');
});
