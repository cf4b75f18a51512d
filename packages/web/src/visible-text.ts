/**
 * The characters that change the direction of the text after them
 * (embeddings and overrides U+202A–U+202E, isolates U+2066–U+2069). They are
 * invisible, and text a run chose can use them to show itself reordered:
 * "rtl \u202Egnp.exe\u202C" reads "rtl exe.png". Names, labels, log lines
 * and errors are shown through visibleText, which replaces each one with a
 * visible, inert marker.
 */
const DIRECTION_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;
const HAS_DIRECTION_CONTROL = /[\u202A-\u202E\u2066-\u2069]/;

/** `text` with each direction control shown as a marker (⟨U+202E⟩) instead of acting on the text around it. */
export function visibleText(text: string): string {
  // Most text has none: no new string for it (event rows and console lines go through here by the thousand).
  if (!HAS_DIRECTION_CONTROL.test(text)) return text;
  return text.replace(DIRECTION_CONTROLS, (c) => `⟨U+${c.codePointAt(0)!.toString(16).toUpperCase()}⟩`);
}

/**
 * A name as a reader can tell it from its neighbours: direction controls
 * shown, and quoted when it starts or ends with white space ("x.txt " is
 * not "x.txt").
 */
export function visibleName(name: string): string {
  const shown = visibleText(name);
  return /^\s|\s$/.test(shown) ? `“${shown}”` : shown;
}
