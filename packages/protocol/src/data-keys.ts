/**
 * User-named keys (metric and counter names, meta keys, call ids, labels)
 * are data, never object properties. A plain `{}` answers `constructor`,
 * `toString` or `hasOwnProperty` from Object.prototype, and `obj[k] = v`
 * with k = "__proto__" replaces its prototype instead of storing a key.
 * These helpers read own keys only and write into null-prototype objects,
 * which serialise to exactly the same JSON as plain ones.
 */

/** The value stored under `key`, never one inherited from a prototype. */
export function ownValue<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** A null-prototype copy of `record` (own enumerable keys), or an empty one. */
export function dataRecord<T>(record?: Record<string, T>): Record<string, T> {
  const copy = Object.create(null) as Record<string, T>;
  if (record) for (const key of Object.keys(record)) copy[key] = record[key]!;
  return copy;
}

/** A copy of `record` with `key` set to `value`; `record` is not changed. */
export function withKey<T>(record: Record<string, T>, key: string, value: T): Record<string, T> {
  const copy = dataRecord(record);
  copy[key] = value;
  return copy;
}
