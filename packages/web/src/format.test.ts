import { expect, test } from 'vitest';
import { formatDuration, formatNumber, formatTick } from './format.js';

test('numbers keep the precision a reader can use', () => {
  expect(formatNumber(1234567)).toBe((1234567).toLocaleString());
  expect(formatNumber(0.91234)).toBe('0.912');
  expect(formatNumber(0.000123456)).toBe('0.000123');
  expect(formatNumber(12.34567)).toBe('12.346');
});

test('axis ticks have as many decimals as their spacing needs', () => {
  expect(formatTick(0.15000000000000002, 0.05)).toBe('0.15');
  expect(formatTick(0.1, 0.05)).toBe('0.10');
  expect(formatTick(20, 10)).toBe('20');
  expect(formatTick(0.5, 0.5)).toBe('0.5');
  expect(formatTick(0.75, 0.25)).toBe('0.75');
  expect(formatTick(0.5, 0.25)).toBe('0.50');
  expect(formatTick(2.5, 2.5)).toBe('2.5');
  expect(formatTick(0.0003, 0.0001)).toBe('0.0003');
  expect(formatTick(2_500_000, 500_000)).toBe('2.5M');
});

test('a duration is one unbreakable word: its spaces are non-breaking', () => {
  expect(formatDuration(260_000)).toBe('4\u00a0m\u00a020\u00a0s');
  expect(formatDuration(2_300)).toBe('2.3\u00a0s');
  expect(formatDuration(7_500_000)).toBe('2\u00a0h\u00a05\u00a0m');
  expect(formatDuration(null)).toBe('–');
});
