import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeInputSchema, exampleInput } from './input-schema-text.js';

/** What GET /handlers reports for a handler defined with `schema`. */
const jsonSchemaOf = (schema: z.ZodType) => z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>;

describe('a handler input schema in words', () => {
  it('names each field with its type, bounds, whether it is required and its default, through "object or null"', () => {
    const schema = z
      .strictObject({
        docs: z.number().int().min(1).max(100_000).default(120).describe('documents to generate'),
        models: z.array(z.string().min(1).max(100)).min(1).max(20).optional(),
        rate: z.number().gt(0).lt(1),
        mode: z.enum(['fast', 'slow']),
        model: z.object({ name: z.string().regex(/^[a-z]+$/) }).optional(),
      })
      .nullable()
      .optional();
    const described = describeInputSchema(jsonSchemaOf(schema));
    expect(described.type).toBe('object or null');
    expect(described.otherFields).toBe(false);
    expect(described.fields).toEqual([
      { path: 'docs', type: 'integer', bounds: ['1 to 100000'], required: false, default: '120', description: 'documents to generate' },
      { path: 'models', type: 'array of string (1 to 100 characters)', bounds: ['1 to 20 items'], required: false, default: null, description: null },
      { path: 'rate', type: 'number', bounds: ['more than 0', 'less than 1'], required: true, default: null, description: null },
      { path: 'mode', type: '"fast" or "slow"', bounds: [], required: true, default: null, description: null },
      { path: 'model', type: 'object', bounds: [], required: false, default: null, description: null },
      { path: 'model.name', type: 'string', bounds: ['matching /^[a-z]+$/'], required: true, default: null, description: null },
    ]);
  });

  it('leaves out the safe-integer bounds zod gives every integer', () => {
    expect(describeInputSchema(jsonSchemaOf(z.object({ n: z.number().int().min(0), m: z.number().int() }))).fields.map((f) => f.bounds)).toEqual([['at least 0'], []]);
  });

  it('describes an input that is not an object by its type and bounds, with no fields', () => {
    expect(describeInputSchema(jsonSchemaOf(z.array(z.string().min(1)).length(1))).type).toBe('array of string (at least 1 character)');
    expect(describeInputSchema(jsonSchemaOf(z.array(z.string().min(1)).length(1))).bounds).toEqual(['exactly 1 item']);
    expect(describeInputSchema(jsonSchemaOf(z.string().max(80)))).toEqual({ type: 'string', bounds: ['at most 80 characters'], fields: [], otherFields: true });
  });

  it('makes an example each schema accepts: defaults where given, else the least value in bounds for the required fields', () => {
    const schemas: z.ZodType[] = [
      z.strictObject({ docs: z.number().int().min(1).max(100).default(40), models: z.array(z.string()).optional() }).nullable().optional(),
      z.strictObject({ n: z.number().int().gt(3), x: z.number().gt(0.5).lt(0.6), name: z.string().min(3), tags: z.array(z.string().min(1)).min(2) }),
      z.object({ mode: z.enum(['fast', 'slow']), kind: z.literal('eval'), on: z.boolean(), below: z.number().int().lt(-2), nested: z.object({ k: z.number().max(-1) }) }),
      z.union([z.null(), z.object({ a: z.string() })]),
      z.array(z.number().int().min(5)).min(1),
    ];
    for (const schema of schemas) {
      const example = exampleInput(jsonSchemaOf(schema));
      expect(schema.safeParse(example).success, JSON.stringify(example)).toBe(true);
    }
    expect(exampleInput(jsonSchemaOf(schemas[0]!))).toEqual({ docs: 40 });
  });

  it('follows $defs of a recursive schema without looping', () => {
    const Node: z.ZodType<{ name: string; children?: unknown[] }> = z.object({ name: z.string(), get children() { return z.array(Node).optional(); } });
    const json = jsonSchemaOf(z.object({ root: Node }));
    expect(describeInputSchema(json).fields.map((f) => `${f.path}: ${f.type}`)).toEqual(['root: object', 'root.name: string', 'root.children: array of object']);
    expect(exampleInput(json)).toEqual({ root: { name: '' } });
  });

  it('lists a recursive object field once, not opened again under itself, however many such fields it has', () => {
    type Node = { name: string; a?: Node; b?: Node | null; c?: Node; d?: Node; e?: Node };
    const Node: z.ZodType<Node> = z
      .object({
        name: z.string(),
        get a() { return Node.optional(); },
        get b() { return Node.nullable().optional(); },
        get c() { return Node.optional(); },
        get d() { return Node.optional(); },
        get e() { return Node.optional(); },
      })
      .meta({ id: 'Node' });
    const described = describeInputSchema(jsonSchemaOf(z.object({ tree: Node })));
    expect(described.fields.map((f) => `${f.path}: ${f.type}`)).toEqual([
      'tree: object', 'tree.name: string', 'tree.a: object', 'tree.b: object or null', 'tree.c: object', 'tree.d: object', 'tree.e: object',
    ]);
  });

  it('makes a bounded example of a schema that asks for more items and characters than can be made', () => {
    const huge = jsonSchemaOf(z.object({ xs: z.array(z.array(z.string().min(1000)).min(1000)).min(1000), many: z.array(z.number()).min(1e9) }));
    const example = exampleInput(huge) as { xs: string[][]; many: number[] };
    expect(JSON.stringify(example).length).toBeLessThan(1_000_000);
    expect(example.xs.length).toBeGreaterThan(0);
    expect(example.xs[0]![0]).toBe('x'.repeat(1000));
  });
});
