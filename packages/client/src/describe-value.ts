/** What a value given from plain JS is, for an error that says what was given instead of what it needed. */
export function typeName(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

/** A value as an error quotes it: a number as itself, a string in quotes (so "1" is not taken for the number 1), else what it is. */
export function describeValue(value: unknown): string {
  if (typeof value === 'number') return String(value);
  return typeof value === 'string' ? `${JSON.stringify(value)} (a string)` : typeName(value);
}
