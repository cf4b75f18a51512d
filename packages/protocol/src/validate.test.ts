import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { ClientMessage } from './stream.js';
import { issuesOf, parseOrThrow } from './validate.js';

/** The message parseOrThrow throws for `value`. */
function refusal(schema: z.ZodType, value: unknown): string {
  try {
    parseOrThrow(schema, value, 'body');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('parsed');
}

describe('field issues of a value that must be one of some', () => {
  const Finish = z.strictObject({ status: z.enum(['succeeded', 'failed', 'cancelled']), steps: z.array(z.strictObject({ kind: z.enum(['a', 'b c', '']) })).optional() });

  it('a field left out is required, and the message lists what it may be', () => {
    expect(refusal(Finish, {})).toBe('invalid body: status: required: one of succeeded, failed, cancelled');
    expect(refusal(Finish, { status: 'failed', steps: [{}] })).toBe('invalid body: steps[0].kind: required: one of a, "b c", ""');
  });

  it('a wrong value is quoted, as JSON, beside what is allowed', () => {
    expect(refusal(Finish, { status: 'Failed' })).toBe('invalid body: status: got "Failed", expected one of succeeded, failed, cancelled');
    expect(refusal(Finish, { status: 3 })).toBe('invalid body: status: got 3, expected one of succeeded, failed, cancelled');
    expect(refusal(Finish, { status: { a: 1 } })).toBe('invalid body: status: got {"a":1}, expected one of succeeded, failed, cancelled');
  });

  it('a literal names its one value; a missing field of another type is required too', () => {
    expect(refusal(z.object({ v: z.literal(2) }), {})).toBe('invalid body: v: required: 2');
    expect(refusal(z.object({ name: z.string() }), {})).toBe('invalid body: name: required: expected string');
    // Present but wrong keeps what zod says of it.
    expect(refusal(z.object({ name: z.string() }), { name: 1 })).toBe('invalid body: name: Invalid input: expected string, received number');
  });

  it("a discriminated union's tag is named the same way", () => {
    const ops = 'subscribe, unsubscribe, subscribeRuns, unsubscribeRuns, ping';
    expect(refusal(ClientMessage, {})).toBe(`invalid body: op: required: one of ${ops}`);
    expect(refusal(ClientMessage, { op: 'sub' })).toBe(`invalid body: op: got "sub", expected one of ${ops}`);
  });

  it('a long list of values is cut at 20, counting the rest', () => {
    const values = Array.from({ length: 25 }, (_, i) => `v${i}`) as [string, ...string[]];
    expect(refusal(z.object({ v: z.enum(values) }), {})).toBe(`invalid body: v: required: one of ${values.slice(0, 20).join(', ')} (and 5 more)`);
  });

  it('issuesOf without the value parsed says what is allowed, and with it whether the field was missing', () => {
    const error = Finish.safeParse({}).error!;
    expect(issuesOf(error)).toEqual([{ path: 'status', message: 'expected one of succeeded, failed, cancelled' }]);
    expect(issuesOf(error, {})).toEqual([{ path: 'status', message: 'required: one of succeeded, failed, cancelled' }]);
  });
});
