import type { ReactNode } from 'react';
import { visibleText } from '../visible-text.js';

/**
 * A small, safe Markdown renderer for artifact previews: headings, lists,
 * block quotes, tables (GFM: a header row, an alignment row, body rows),
 * fenced and inline code, emphasis and links. It builds React
 * elements, never HTML, so markup in the text (a `<script>`, an `onerror`)
 * shows as text; links are followed only to http(s) URLs.
 */
export function Markdown({ text }: { text: string }) {
  return <div className="markdown">{blocks(visibleText(text).replace(/\r\n?/g, '\n').split('\n'))}</div>;
}

function blocks(lines: string[]): ReactNode[] {
  const out: ReactNode[] = [];
  let i = 0;
  const key = () => out.length;
  while (i < lines.length) {
    const line = lines[i]!;
    const fence = /^\s*(```|~~~)/.exec(line);
    if (fence) {
      const code: string[] = [];
      for (i++; i < lines.length && !lines[i]!.trimStart().startsWith(fence[1]!); i++) code.push(lines[i]!);
      i++;
      out.push(
        <pre key={key()} className="md-code">
          <code>{code.join('\n')}</code>
        </pre>,
      );
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      // Under the panel's h2: a document's # is the page's h3.
      const Tag = `h${Math.min(6, heading[1]!.length + 2)}` as 'h3';
      out.push(<Tag key={key()}>{inline(heading[2]!)}</Tag>);
      i++;
      continue;
    }
    const header = tableStart(lines, i);
    if (header) {
      const rows: string[][] = [];
      for (i += 2; i < lines.length && lines[i]!.trim() !== '' && lines[i]!.includes('|') && !startsBlock(lines[i]!); i++) rows.push(cells(lines[i]!));
      out.push(<Table key={key()} header={header.cells} align={header.align} rows={rows} />);
      continue;
    }
    const list = listItem(line);
    if (list) {
      const items: string[] = [];
      while (i < lines.length) {
        const item = listItem(lines[i]!);
        if (!item || item.ordered !== list.ordered) break;
        items.push(item.text);
        i++;
      }
      const children = items.map((t, n) => <li key={n}>{inline(t)}</li>);
      out.push(list.ordered ? <ol key={key()}>{children}</ol> : <ul key={key()}>{children}</ul>);
      continue;
    }
    if (/^\s*>/.test(line)) {
      const quoted: string[] = [];
      for (; i < lines.length && /^\s*>/.test(lines[i]!); i++) quoted.push(lines[i]!.replace(/^\s*>\s?/, ''));
      out.push(<blockquote key={key()}>{blocks(quoted)}</blockquote>);
      continue;
    }
    if (line.trim() === '') {
      i++;
      continue;
    }
    const paragraph: string[] = [];
    for (; i < lines.length && lines[i]!.trim() !== '' && !startsBlock(lines[i]!) && !tableStart(lines, i); i++) paragraph.push(lines[i]!.trim());
    out.push(<p key={key()}>{inline(paragraph.join(' '))}</p>);
  }
  return out;
}

function listItem(line: string): { ordered: boolean; text: string } | null {
  const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
  if (bullet) return { ordered: false, text: bullet[1]! };
  const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
  return numbered ? { ordered: true, text: numbered[1]! } : null;
}

type Align = 'left' | 'center' | 'right' | undefined;

/** `| a | b |` then `|---|:-:|` (as many cells): the header and alignments of a table starting at line i, else null. */
function tableStart(lines: readonly string[], i: number): { cells: string[]; align: Align[] } | null {
  const head = lines[i]!;
  const rule = lines[i + 1];
  // The rule needs a pipe: a lone `---` under a line is that line's underline, not a table.
  if (rule === undefined || !head.includes('|') || !rule.includes('|') || !TABLE_RULE.test(rule)) return null;
  const cellsOfHead = cells(head);
  const align = cells(rule).map((c): Align => {
    const left = c.startsWith(':');
    const right = c.endsWith(':');
    return left && right ? 'center' : right ? 'right' : left ? 'left' : undefined;
  });
  return cellsOfHead.length === align.length ? { cells: cellsOfHead, align } : null;
}

const TABLE_RULE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

/** A table row's cells: split at each `|` that is not escaped (`\|` is a pipe in a cell), outer pipes dropped. */
function cells(line: string): string[] {
  const out: string[] = [];
  let cell = '';
  const text = line.trim().replace(/^\|/, '');
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && text[i + 1] === '|') {
      cell += '|';
      i++;
    } else if (c === '|') {
      out.push(cell.trim());
      cell = '';
    } else cell += c;
  }
  if (cell.trim() !== '' || !text.endsWith('|')) out.push(cell.trim());
  return out;
}

/** Body rows get the header's number of cells: missing ones are empty, extra ones are left out (as GFM does). */
function Table({ header, align, rows }: { header: string[]; align: Align[]; rows: string[][] }) {
  const style = (n: number) => (align[n] ? { textAlign: align[n] } : undefined);
  return (
    <div className="md-table-wrap">
      <table className="md-table">
        <thead>
          <tr>
            {header.map((c, n) => (
              <th key={n} style={style(n)}>
                {inline(c)}
              </th>
            ))}
          </tr>
        </thead>
        {rows.length > 0 && (
          <tbody>
            {rows.map((row, r) => (
              <tr key={r}>
                {header.map((_, n) => (
                  <td key={n} style={style(n)}>
                    {inline(row[n] ?? '')}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        )}
      </table>
    </div>
  );
}

function startsBlock(line: string): boolean {
  return /^\s*(```|~~~|#{1,6}\s|>)/.test(line) || listItem(line) !== null;
}

// A link's URL may hold one level of balanced parentheses, as in
// `javascript:alert(1)`: the whole URL is judged, and no stray ")" is left.
// Underscores emphasise only at word edges (snake_case and __dunder__ names stay text).
const INLINE = /`([^`]+)`|\[([^\]]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)|\*\*(.+?)\*\*|(?<!\w)__(\S.*?)__(?!\w)|\*([^*\s][^*]*?)\*|(?<!\w)_([^_\s][^_]*?)_(?!\w)/g;

/** Only these become links; anything else (javascript:, data:, relative paths) stays text. */
export function safeHref(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch (err) {
    // Not an absolute URL: shown as text, never resolved against the dashboard.
    void err;
    return null;
  }
}

function inline(text: string): ReactNode[] {
  const out: ReactNode[] = [];
  let at = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    const k = m.index;
    if (m[1] !== undefined) out.push(<code key={k}>{m[1]}</code>);
    else if (m[2] !== undefined) {
      const href = safeHref(m[3]!);
      out.push(
        href ? (
          <a key={k} href={href} target="_blank" rel="noreferrer noopener nofollow">
            {inline(m[2])}
          </a>
        ) : (
          <span key={k}>{inline(m[2])}</span>
        ),
      );
    } else if (m[4] !== undefined || m[5] !== undefined) out.push(<strong key={k}>{inline((m[4] ?? m[5])!)}</strong>);
    else out.push(<em key={k}>{inline((m[6] ?? m[7])!)}</em>);
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}
