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

/** Allowed values an enum message lists at most: the rest are counted. */
const MAX_LISTED_VALUES = 20;

/** An allowed value as a message lists it: plain words bare, anything else as JSON (`""`, `null`, `"a b"`). */
function allowedValueText(value: unknown): string {
  return typeof value === 'string' && /^[\w.:/-]+$/.test(value) ? value : JSON.stringify(value) ?? String(value);
}

function allowedValuesText(values: ReadonlyArray<unknown>): string {
  const listed = values.slice(0, MAX_LISTED_VALUES).map(allowedValueText).join(', ');
  const more = values.length > MAX_LISTED_VALUES ? ` (and ${values.length - MAX_LISTED_VALUES} more)` : '';
  return values.length === 1 ? listed : `one of ${listed}${more}`;
}

/** Characters of a refused value an error quotes back: it is the client's text, and may be a megabyte. */
const MAX_QUOTED_VALUE_CHARS = 50;

function givenValueText(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch (err) {
    // A value that is not JSON (a BigInt, a cycle) only reaches here from a caller in this process, never from a request.
    text = `a value JSON cannot show (${(err as Error).message})`;
  }
  if (text.length <= MAX_QUOTED_VALUE_CHARS) return text;
  const cut = text.slice(0, MAX_QUOTED_VALUE_CHARS).replace(/[\uD800-\uDBFF]$/, '');
  return `${cut}…(${text.length} characters)`;
}

/** Whether `input` holds something at `path`: an own property all the way down (JSON has no undefined, so undefined is missing). */
function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): { found: true; value: unknown } | { found: false } {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return { found: false };
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value === undefined ? { found: false } : { found: true, value };
}

/**
 * What is wrong with a field that must be one of some values: zod says
 * "Invalid option: expected one of …" whether the field was left out or
 * given a wrong value, so one who left it out looked for a typo that was
 * not there. Unknown (`input` not given) only says what is allowed.
 */
function enumMessage(values: ReadonlyArray<unknown>, input: unknown, path: ReadonlyArray<PropertyKey>, known: boolean): string {
  const allowed = allowedValuesText(values);
  if (!known) return `expected ${allowed}`;
  const at = valueAt(input, path);
  if (!at.found) return `required: ${allowed}`;
  return `got ${givenValueText(at.value)}, expected ${allowed}`;
}

/**
 * One issue per bad field. An unknown key of a strict object is reported by
 * zod at the object's path; name the key itself (`events[0].data.metadata`),
 * which is what the producer has to remove or rename. `input` is the value
 * parsed (`known` says whether the caller gave it): a field it lacks is
 * called required, not wrong.
 */
function fieldIssues(prefix: string, issues: ReadonlyArray<z.core.$ZodIssue>, input: unknown, known: boolean): FieldIssue[] {
  return issues.flatMap((i): FieldIssue[] => {
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((key) => ({ path: fieldPath(prefix, [...i.path, key]), message: 'unknown field (only the fields this object defines are accepted)' }));
    }
    // A record key refused by its schema: say why, at the key (zod says only "Invalid key in record").
    // Its issues are about the key itself, which is there: no input to look a path up in.
    if (i.code === 'invalid_key') return fieldIssues(fieldPath(prefix, i.path), i.issues, undefined, false);
    if (i.code === 'invalid_value') return [{ path: fieldPath(prefix, i.path), message: enumMessage(i.values, input, i.path, known) }];
    // A discriminated union's tag (`op`, `kind`) that matches none of its options.
    const options = (i as { options?: unknown }).options;
    if (i.code === 'invalid_union' && Array.isArray(options)) {
      return [{ path: fieldPath(prefix, i.path), message: enumMessage(options, input, i.path, known) }];
    }
    if (i.code === 'invalid_type' && known && !valueAt(input, i.path).found) {
      return [{ path: fieldPath(prefix, i.path), message: `required: expected ${i.expected}` }];
    }
    return [{ path: fieldPath(prefix, i.path), message: i.message }];
  });
}

/**
 * A failed parse's issues, one per bad field, as every error of the API names them (an unknown key by its own path).
 * Give `input`, the value parsed, to have a missing field called required rather than wrong.
 */
export function issuesOf(error: z.ZodError, ...input: [] | [unknown]): FieldIssue[] {
  return fieldIssues('', error.issues, input[0], input.length > 0);
}

/** Parse with a schema or throw invalid_request naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalidRequest(where, fieldIssues('', result.error.issues, value, true));
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
    const data = event.data ?? {};
    const result = schema.safeParse(data);
    if (!result.success) {
      issues.push(...fieldIssues(`${prefix}[${index}].data`, result.error.issues, data, true));
    } else {
      // A type that keeps extra fields keeps them exactly as sent, as data:
      // zod's parsed output would drop one named "__proto__".
      event.data = extraFieldsOf(event.type) === 'kept' ? dataRecord(event.data as Record<string, unknown>) : result.data;
    }
  });
  return issues;
}

export { EventInput };
