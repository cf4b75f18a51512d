import { fieldPath, invalidRequest } from '@runtrail/protocol';

/**
 * What JSON.stringify writes in place of a value without a word: a Map or a
 * Set as {} (its entries gone), NaN and ±Infinity as null. A score kept in a
 * Map, or a metric that came out NaN, would be stored as nothing and the
 * producer never told; null when the value is fine.
 */
function silentlyChanged(value: unknown): string | null {
  if (typeof value === 'number') return Number.isFinite(value) ? null : `is ${value}, which JSON cannot hold (it would be stored as null)`;
  if (value instanceof Map) return 'is a Map, which JSON writes as {} (its entries lost): send Object.fromEntries(map)';
  if (value instanceof Set) return 'is a Set, which JSON writes as {} (its members lost): send [...set]';
  return null;
}

class Unrepresentable extends Error {}

function refuseSilentChanges(this: unknown, _key: string, value: unknown): unknown {
  if (silentlyChanged(value) !== null) throw new Unrepresentable();
  return value;
}

/** Where under `value` the first silently changed value is, as a path from `root`, and what it is. */
function findSilentChange(value: unknown, path: Array<string | number>, seen: Set<object>): { path: Array<string | number>; problem: string } | null {
  const problem = silentlyChanged(value);
  if (problem !== null) return { path, problem };
  if (typeof value !== 'object' || value === null || seen.has(value)) return null;
  seen.add(value);
  // As JSON.stringify sees it: a Date (or any toJSON) is what toJSON returns.
  const json = typeof (value as { toJSON?: unknown }).toJSON === 'function' ? (value as { toJSON: () => unknown }).toJSON() : value;
  if (json !== value) return findSilentChange(json, path, seen);
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  for (const [key, child] of entries) {
    const found = findSilentChange(child, [...path, key], seen);
    if (found) return found;
  }
  return null;
}

/**
 * `value` as JSON text, or invalid_request naming the field that cannot be
 * sent as it is: a cycle or a BigInt (JSON.stringify's own TypeError), a
 * Map, a Set, NaN or ±Infinity (which it would change silently). Said at the
 * call, before anything is queued or sent: a TypeError from inside a send
 * reads as a network failure and would be retried. `where`: what the value
 * is part of ("x.score event", "end of run r1"); `root`: its field ("data").
 */
export function jsonText(value: unknown, where: string, root: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value, refuseSilentChanges);
  } catch (err) {
    if (!(err instanceof Unrepresentable)) {
      // V8's cycle message spans lines (where the circle starts and closes): one line reads better in a log.
      const why = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
      throw invalidRequest(where, [{ path: fieldPath(root, []), message: `is not JSON: ${why}` }]);
    }
    const found = findSilentChange(value, [], new Set());
    // The replacer saw it, so the walk finds it; the fallback only keeps the error truthful if they ever disagree.
    throw invalidRequest(where, [{ path: fieldPath(root, found?.path ?? []), message: found?.problem ?? 'cannot be sent as JSON without changing it' }]);
  }
  if (json === undefined) throw invalidRequest(where, [{ path: fieldPath(root, []), message: 'is not JSON (a function, a symbol or undefined)' }]);
  return json;
}
