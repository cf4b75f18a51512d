import { renderToStaticMarkup } from 'react-dom/server';
import { expect, test } from 'vitest';
import { Markdown } from './markdown.js';

const html = (text: string) => renderToStaticMarkup(<Markdown text={text} />);

test('a GFM table renders as a table: header, body rows, each column aligned as its rule says', () => {
  expect(html('| a | b |\n|---|---|\n| 1 | 2 |')).toBe(
    '<div class="markdown"><div class="md-table-wrap"><table class="md-table"><thead><tr><th>a</th><th>b</th></tr></thead>' +
      '<tbody><tr><td>1</td><td>2</td></tr></tbody></table></div></div>',
  );
  const aligned = html('name | score | note\n:--- | ---: | :-:\nLee | 0.8 | ok');
  expect(aligned).toContain('<th style="text-align:left">name</th><th style="text-align:right">score</th><th style="text-align:center">note</th>');
  expect(aligned).toContain('<td style="text-align:left">Lee</td><td style="text-align:right">0.8</td><td style="text-align:center">ok</td>');
});

test('a table ends at a blank line, keeps the header’s columns, and reads escaped pipes and inline marks in cells', () => {
  const out = html('Intro line\n| k | v |\n| - | - |\n| **bold** | a \\| b |\n| only |\n| x | y | extra |\n\nAfter.');
  expect(out).toContain('<p>Intro line</p>');
  expect(out).toContain('<tr><td><strong>bold</strong></td><td>a | b</td></tr>');
  expect(out).toContain('<tr><td>only</td><td></td></tr>');
  expect(out).toContain('<tr><td>x</td><td>y</td></tr>');
  expect(out).not.toContain('extra');
  expect(out).toContain('<p>After.</p>');
});

test('a table stays safe: markup in a cell is text, a script link is not a link', () => {
  const out = html('| a |\n|---|\n| <img src=x onerror=alert(1)> [x](javascript:alert(1)) |');
  expect(out).toContain('<td>&lt;img src=x onerror=alert(1)&gt; <span>x</span></td>');
  expect(out).not.toContain('<img');
  expect(out).not.toContain('href');
});

test('not a table: a rule row with another number of cells, or a lone --- under a line', () => {
  expect(html('| a | b |\n|---|\n| 1 | 2 |')).not.toContain('<table');
  expect(html('a | b\n---')).not.toContain('<table');
});
