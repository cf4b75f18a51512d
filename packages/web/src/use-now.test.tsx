import { renderToStaticMarkup } from 'react-dom/server';
import { afterEach, expect, test, vi } from 'vitest';
import { useNow } from './use-now.js';

afterEach(() => vi.restoreAllMocks());

/** A part of a page that shows the whole seconds of the page's clock. */
function Seconds({ id }: { id: string }) {
  return <span id={id}>{Math.floor(useNow() / 1000)}</span>;
}

test('every part rendered in one go shows the same moment, though the wall clock turns a second between them', () => {
  // The clock moves on between the two parts' renders, as it does on a busy machine: 11.999 s, then 12.001 s.
  const readings = [11_999, 12_001];
  vi.spyOn(Date, 'now').mockImplementation(() => readings.shift() ?? 12_001);
  const html = renderToStaticMarkup(
    <>
      <Seconds id="header" />
      <Seconds id="card" />
    </>,
  );
  // Before: the header said 11 and the card 12 ("no progress for 11 s" beside "12 s").
  expect(html).toBe('<span id="header">11</span><span id="card">11</span>');
});
