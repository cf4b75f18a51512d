import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { utf8Length } from './limits.js';

describe('utf8Length', () => {
  it('counts what Buffer.byteLength counts, for any string, lone surrogates included', () => {
    for (const text of ['', 'a', 'é', '€', '😀', 'a\ud800', '\udc00b', '\ud800\ud800\udc00']) {
      expect(utf8Length(text)).toBe(Buffer.byteLength(text));
    }
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (text) => utf8Length(text) === Buffer.byteLength(text)));
  });
});
