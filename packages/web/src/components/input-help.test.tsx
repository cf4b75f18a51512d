import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InputHelp } from './InputHelp.js';

/** The "required" column of the Start run form's input table for a handler defined with `schema`, by field. */
function requiredColumn(schema: z.ZodType): Record<string, string> {
  const html = renderToStaticMarkup(<InputHelp handler="h" input={{ kind: 'schema', schema: z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown> }} />);
  const rows = [...html.matchAll(/<tr><td><code>(.*?)<\/code>.*?<\/tr>/g)].map((m) => [m[1]!, /<td>([^<]*)<\/td><\/tr>$/.exec(m[0])![1]!] as const);
  return Object.fromEntries(rows);
}

describe('the Start run form says which fields are required', () => {
  it('says a field of an optional object is required only if that object is given', () => {
    expect(
      requiredColumn(
        z.object({
          dataset: z.string(),
          model: z.object({ name: z.string(), temperature: z.number().optional() }).optional(),
          retry: z.object({ times: z.number().default(2), backoff: z.object({ ms: z.number() }) }).optional(),
        }),
      ),
    ).toEqual({
      dataset: 'required',
      model: 'optional',
      'model.name': 'required if model is given',
      'model.temperature': 'optional',
      retry: 'optional',
      'retry.times': 'optional, default 2',
      // Inside a required object of an optional one: it is there whenever retry is.
      'retry.backoff': 'required if retry is given',
      'retry.backoff.ms': 'required if retry is given',
    });
  });

  it('says which object decides when objects that may be left out or null are nested', () => {
    expect(
      requiredColumn(
        z.object({
          gpu: z.object({ kind: z.string() }).nullable(),
          outer: z.object({ inner: z.object({ id: z.string() }).nullable(), deep: z.object({ id: z.string() }).optional() }).optional(),
        }),
      ),
    ).toEqual({
      gpu: 'required',
      'gpu.kind': 'required unless gpu is null',
      outer: 'optional',
      'outer.inner': 'required if outer is given',
      'outer.inner.id': 'required if outer.inner is given and not null',
      'outer.deep': 'optional',
      'outer.deep.id': 'required if outer.deep is given',
    });
  });

  it('says a field of an input that may be null is required unless the input is null', () => {
    expect(requiredColumn(z.object({ rate: z.number(), note: z.string().optional() }).nullable())).toEqual({ rate: 'required unless the input is null', note: 'optional' });
  });
});
