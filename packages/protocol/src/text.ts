import { z } from 'zod';

/**
 * What characters a string the stores keep as text may hold, decided here
 * once for both stores. PostgreSQL's text and jsonb cannot hold NUL (U+0000)
 * at all, and both stores write a lone UTF-16 surrogate as U+FFFD, so such a
 * string would be a 500 on one store and a changed value on the other;
 * instead it is refused with 400 `invalid_request` naming the field, on
 * every store alike. Free-form JSON (run input, event data, output, artifact
 * metadata) is stored as JSON text, where NUL is the escape `\u0000`: it is
 * not checked here and keeps any character.
 *
 * Two rules:
 * - `nameText`: identifiers and names (run names, label keys and values, ids,
 *   event types, phase names, token names, list filters): no control
 *   character at all (C0, DEL, C1), and no lone surrogate.
 * - `freeText`: prose (error messages, cancel reasons): only NUL is refused,
 *   so newlines and tabs of a traceback keep working.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Line and paragraph separators: JavaScript, JSON viewers and many editors break a line at them.
const LINE_SEPARATOR = /[\u2028\u2029]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export const TEXT_RULES = {
  name: 'must not contain NUL or other control characters',
  free: 'must not contain NUL (U+0000)',
  surrogate: 'must not contain a lone UTF-16 surrogate (not valid Unicode)',
  line: 'must not contain a line or paragraph separator (U+2028, U+2029)',
} as const;

/** Why `text` is refused as a name or identifier, or null. */
export function nameTextProblem(text: string): string | null {
  if (CONTROL.test(text)) return TEXT_RULES.name;
  if (LONE_SURROGATE.test(text)) return TEXT_RULES.surrogate;
  return null;
}

/** Why `text` is refused as a name shown on one line (a handler's), or null: nameTextProblem's rule, and no line separator. */
export function lineNameTextProblem(text: string): string | null {
  return nameTextProblem(text) ?? (LINE_SEPARATOR.test(text) ? TEXT_RULES.line : null);
}

/** Why `text` is refused as free text (a message, a reason), or null. */
export function freeTextProblem(text: string): string | null {
  if (text.includes('\u0000')) return TEXT_RULES.free;
  if (LONE_SURROGATE.test(text)) return TEXT_RULES.surrogate;
  return null;
}

function refusing(problemOf: (text: string) => string | null) {
  return (text: string, ctx: z.core.$RefinementCtx<string>) => {
    const problem = problemOf(text);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: text });
  };
}

/** A string schema refusing what `nameTextProblem` refuses (chain min/max before or after). */
export function nameText(): z.ZodString {
  return z.string().superRefine(refusing(nameTextProblem));
}

/** A string schema refusing what `lineNameTextProblem` refuses. */
export function lineNameText(): z.ZodString {
  return z.string().superRefine(refusing(lineNameTextProblem));
}

/** A string schema refusing what `freeTextProblem` refuses. */
export function freeText(): z.ZodString {
  return z.string().superRefine(refusing(freeTextProblem));
}

/** A path parameter (a run, token or artifact name in the URL): a name, never a control character. */
export const PathParams = z.record(z.string(), nameText());
