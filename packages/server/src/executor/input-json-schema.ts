import { z } from 'zod';
import type { HandlerInput } from '@runtrail/protocol';
import type { InputSchema } from './executor.js';

/**
 * A handler's input schema as GET /handlers reports it: its JSON Schema
 * (of what a run may be created with, so a field with a default is
 * optional), or why there is none. Worked out once, when the handler is
 * defined; a schema that cannot be converted is reported, never an error
 * of define or of the route.
 */
export function handlerInputOf(schema: InputSchema | undefined): HandlerInput {
  if (!schema) return { kind: 'any' };
  // define takes anything with safeParse (a zod 3 schema, a hand-written checker): only zod 4 knows its JSON Schema.
  if (typeof schema !== 'object' || schema === null || !('_zod' in schema)) {
    return { kind: 'unconvertible', reason: 'its schema is not a zod 4 schema, so it has no JSON Schema here' };
  }
  try {
    return { kind: 'schema', schema: z.toJSONSchema(schema as unknown as z.ZodType, { io: 'input' }) as Record<string, unknown> };
  } catch (err) {
    // zod throws for what JSON Schema cannot express (a transform, a date, a bigint, z.custom): said, and the input is still checked at create.
    return { kind: 'unconvertible', reason: err instanceof Error ? err.message : String(err) };
  }
}
