/**
 * Escape sequences a program writes for a terminal: CSI (colours, cursor
 * moves, line clears: ESC [ … final byte), OSC (window titles, hyperlinks:
 * ESC ] … BEL or ESC \) and the other two-byte escapes. A terminal acts on
 * them and shows none; printed as text, ESC is a box before "[32m".
 */
// eslint-disable-next-line no-control-regex -- ESC and BEL are exactly what is matched
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

/**
 * One line of a command's output as a terminal shows it: escape sequences
 * acted on (dropped; colours are not drawn), and a line redrawn with
 * carriage returns (a progress bar) in its last state, each rewrite
 * overwriting the start of what was there.
 */
export function terminalLine(text: string): string {
  // Most lines have neither: no new string for them (a console holds thousands).
  if (!text.includes('\x1b') && !text.includes('\r')) return text;
  const plain = text.replace(ESCAPES, '');
  if (!plain.includes('\r')) return plain;
  let line = '';
  for (const rewrite of plain.split('\r')) line = rewrite + line.slice(rewrite.length);
  return line;
}

/** Text a command printed, several lines of it (an error with the last stderr lines), each as terminalLine shows it. */
export function terminalText(text: string): string {
  if (!text.includes('\x1b') && !text.includes('\r')) return text;
  return text.split('\n').map(terminalLine).join('\n');
}
