import { describe, expect, it } from 'vitest';
import { ParsedInputs } from './parsed-inputs.js';

const textOf = (chars: number, tag: string) => JSON.stringify({ tag, pad: 'x'.repeat(chars) });

describe('ParsedInputs', () => {
  it('parses a large input once per text, and small ones every time', () => {
    const inputs = new ParsedInputs(100, 10_000);
    const big = textOf(200, 'a');
    const first = inputs.parse('r1', big);
    // A new string with the same text (a second read of the row) gets the same value.
    expect(inputs.parse('r1', ` ${big}`.slice(1))).toBe(first);
    expect(inputs.parse('r1', textOf(200, 'b'))).toEqual({ tag: 'b', pad: 'x'.repeat(200) });
    const small = '{"a":1}';
    expect(inputs.parse('r2', small)).not.toBe(inputs.parse('r2', small));
    expect(inputs.parse('r3', null)).toBeNull();
    expect(inputs.size).toBe(1);
  });

  it('keeps at most its character budget, dropping the least recently used', () => {
    const inputs = new ParsedInputs(100, 1_000);
    const texts = ['a', 'b', 'c', 'd'].map((tag) => textOf(300, tag));
    const values = texts.map((text, i) => inputs.parse(`r${i}`, text));
    // Three of ~320 characters fit in 1,000: r0 went when r3 came.
    expect(inputs.size).toBe(3);
    expect(inputs.parse('r1', texts[1]!)).toBe(values[1]);
    expect(inputs.parse('r0', texts[0]!)).not.toBe(values[0]);
    // r0 came back and r2 was the least recently used: it went, r1 stayed.
    expect(inputs.parse('r1', texts[1]!)).toBe(values[1]);
    expect(inputs.parse('r2', texts[2]!)).not.toBe(values[2]);
    // Over the whole budget alone: parsed, not kept.
    inputs.parse('huge', textOf(2_000, 'h'));
    expect(inputs.size).toBe(3);
  });

  it('hands out frozen values, all the way down', () => {
    const inputs = new ParsedInputs(10, 10_000);
    const value = inputs.parse('r', JSON.stringify({ list: [{ deep: { n: 1 } }], pad: 'x'.repeat(20) })) as { list: Array<{ deep: { n: number } }> };
    expect(() => (value.list[0]!.deep.n = 2)).toThrow(TypeError);
    expect(() => value.list.push({ deep: { n: 3 } })).toThrow(TypeError);
  });
});
