import type { z } from 'zod';
import { RuntrailError } from './errors.js';
import { dataRecord } from './data-keys.js';
import { EventInput, eventDataSchemas, extraFieldsOf, isKnownEventType } from './events.js';
import { nameTextProblem } from './text.js';

export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * Characters of a key a path shows: a key is the client's text, and one of
 * a megabyte (an unknown field, a refused label key) came back whole in the
 * message and in each of up to 100 issues.
 */
const MAX_PATH_KEY_CHARS = 100;

function keyText(part: string): string {
  if (part.length <= MAX_PATH_KEY_CHARS) return part;
  // Not cut between the two halves of a character.
  const cut = part.slice(0, MAX_PATH_KEY_CHARS).replace(/[\uD800-\uDBFF]$/, '');
  return `${cut}…(${part.length} characters)`;
}

/** A field's path as errors name it (`events[3].data.done`), from `prefix` and the keys under it. */
export function fieldPath(prefix: string, path: ReadonlyArray<PropertyKey>): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    // A key that is not plain text (a refused label key) is shown escaped, as JSON: ["k\u0000"].
    else if (nameTextProblem(String(part)) || String(part).length > MAX_PATH_KEY_CHARS) out += `[${JSON.stringify(keyText(String(part)))}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

/**
 * One issue per bad field. An unknown key of a strict object is reported by
 * zod at the object's path; name the key itself (`events[0].data.metadata`),
 * which is what the producer has to remove or rename.
 */
function fieldIssues(prefix: string, issues: ReadonlyArray<z.core.$ZodIssue>): FieldIssue[] {
  return issues.flatMap((i): FieldIssue[] => {
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((key) => ({ path: fieldPath(prefix, [...i.path, key]), message: 'unknown field (only the fields this object defines are accepted)' }));
    }
    // A record key refused by its schema: say why, at the key (zod says only "Invalid key in record").
    if (i.code === 'invalid_key') return fieldIssues(fieldPath(prefix, i.path), i.issues);
    return [{ path: fieldPath(prefix, i.path), message: i.message }];
  });
}

/** A failed parse's issues, one per bad field, as every error of the API names them (an unknown key by its own path). */
export function issuesOf(error: z.ZodError): FieldIssue[] {
  return fieldIssues('', error.issues);
}

/** Parse with a schema or throw invalid_request naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalidRequest(where, fieldIssues('', result.error.issues));
}

/**
 * Issues an error's details list at most: a batch of 10,000 events each
 * wrong once made a 1 MB error body. `issueCount` says how many there were.
 */
export const MAX_REPORTED_ISSUES = 100;

export function invalidRequest(where: string, issues: FieldIssue[]): RuntrailError {
  const first = issues[0];
  const summary = first ? `${first.path}: ${first.message}` : 'invalid';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  const details =
    issues.length > MAX_REPORTED_ISSUES ? { issues: issues.slice(0, MAX_REPORTED_ISSUES), issueCount: issues.length } : { issues };
  return new RuntrailError('invalid_request', `invalid ${where}: ${summary}${more}`, details);
}

/**
 * Check each event's `data` against the schema of its type. The envelope
 * (`type`, `id`, `ts`) is checked by `EventInput`; this second step names the
 * exact field inside `data` that is wrong, e.g. `events[3].data.done`.
 */
export function validateEventData(events: EventInput[], prefix = 'events'): FieldIssue[] {
  const issues: FieldIssue[] = [];
  events.forEach((event, index) => {
    if (!isKnownEventType(event.type)) return;
    const schema = eventDataSchemas[event.type];
    const result = schema.safeParse(event.data ?? {});
    if (!result.success) {
      issues.push(...fieldIssues(`${prefix}[${index}].data`, result.error.issues));
    } else {
      // A type that keeps extra fields keeps them exactly as sent, as data:
      // zod's parsed output would drop one named "__proto__".
      event.data = extraFieldsOf(event.type) === 'kept' ? dataRecord(event.data as Record<string, unknown>) : result.data;
    }
  });
  return issues;
}

export { EventInput };
