/**
 * Rows of CSV text (RFC 4180: quoted fields with commas, newlines and ""),
 * at most `maxRows`; `more` says whether rows were left out. A clipped
 * preview may end mid-row: that last row is dropped rather than shown torn.
 */
export function parseCsv(text: string, maxRows: number, clipped: boolean): { rows: string[][]; more: boolean } {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endRow = () => {
    row.push(field);
    rows.push(row);
    row = [];
    field = '';
  };
  for (; i < text.length && rows.length <= maxRows; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRow();
    } else field += c;
  }
  const complete = i >= text.length && !clipped;
  if (complete && (field !== '' || row.length > 0)) endRow();
  const more = rows.length > maxRows || !complete;
  return { rows: rows.slice(0, maxRows), more };
}
