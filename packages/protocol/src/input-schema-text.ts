/**
 * A handler's input JSON Schema (GET /handlers `inputs`) as people read it,
 * and an input it accepts: what the dashboard's Start run form shows and
 * pre-fills, and what `runtrail handlers NAME` prints. Covers what
 * z.toJSONSchema writes (types, bounds, enums, unions, $defs); anything
 * else is named by its JSON Schema keyword rather than left out.
 */

import { dataRecord } from './data-keys.js';

type JsonSchema = Record<string, unknown>;

/** One field of an input, nested ones by dotted path ("model.name"). */
export interface InputField {
  path: string;
  /** "integer", "array of string", "\"fast\" or \"slow\"", … */
  type: string;
  /** "1 to 100000", "1 to 20 items", "at most 100 characters", … (empty: none) */
  bounds: string[];
  required: boolean;
  /** The default as JSON text, or null for none. */
  default: string | null;
  description: string | null;
}

export interface InputDescription {
  /** What the whole input is: "object", "object or null", "string", … */
  type: string;
  /** The whole input's own bounds (of a top-level string, number or array). */
  bounds: string[];
  /** The fields of an object input (none for another type). */
  fields: InputField[];
  /** Whether fields not listed are accepted (false: refused by name). */
  otherFields: boolean;
}

/** How deep $refs and nested objects are followed: a recursive schema ends here rather than looping. */
const MAX_DEPTH = 8;

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The schema a local `$ref` ("#/$defs/Name") points at, else the schema itself. */
function resolved(schema: JsonSchema, root: JsonSchema): JsonSchema {
  const ref = schema.$ref;
  if (typeof ref !== 'string' || !ref.startsWith('#/')) return schema;
  let at: unknown = root;
  for (const part of ref.slice(2).split('/')) at = isSchema(at) && Object.hasOwn(at, part) ? at[part] : undefined;
  return isSchema(at) ? at : schema;
}

function branches(schema: JsonSchema): JsonSchema[] | null {
  const list = schema.anyOf ?? schema.oneOf;
  return Array.isArray(list) ? list.filter(isSchema) : null;
}

function isNull(schema: JsonSchema): boolean {
  return schema.type === 'null';
}

/** The type of a schema in words. */
function typeText(given: JsonSchema, root: JsonSchema, depth = 0): string {
  const schema = resolved(given, root);
  if (depth > MAX_DEPTH) return 'any';
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(' or ');
  const union = branches(schema);
  if (union) return union.map((b) => typeText(b, root, depth + 1)).join(' or ');
  if (Array.isArray(schema.allOf)) return schema.allOf.filter(isSchema).map((b) => typeText(b, root, depth + 1)).join(' and ');
  const type = Array.isArray(schema.type) ? schema.type.join(' or ') : typeof schema.type === 'string' ? schema.type : 'any';
  if (type === 'array' && isSchema(schema.items)) {
    const items = resolved(schema.items, root);
    const itemBounds = boundsOf(items);
    return `array of ${typeText(items, root, depth + 1)}${itemBounds.length ? ` (${itemBounds.join(', ')})` : ''}`;
  }
  return type;
}

/** "1 to 20 items", "at least 1 character", "exactly 3 items"; a bare number range without a unit. */
function range(low: unknown, high: unknown, unit: string): string | null {
  const has = (v: unknown): v is number => typeof v === 'number';
  const u = (n: number) => (unit ? ` ${unit}${n === 1 ? '' : 's'}` : '');
  if (has(low) && has(high)) return low === high ? `exactly ${low}${u(low)}` : `${low} to ${high}${u(high)}`;
  if (has(low)) return `at least ${low}${u(low)}`;
  if (has(high)) return `at most ${high}${u(high)}`;
  return null;
}

/** A bound zod's int() adds to every integer (±(2^53 - 1)) says nothing the type does not: left out. */
function ownBound(value: unknown): unknown {
  return value === Number.MAX_SAFE_INTEGER || value === Number.MIN_SAFE_INTEGER ? undefined : value;
}

/** A schema's own bounds in words. */
function boundsOf(schema: JsonSchema): string[] {
  const out = [
    range(ownBound(schema.minimum), ownBound(schema.maximum), ''),
    typeof schema.exclusiveMinimum === 'number' ? `more than ${schema.exclusiveMinimum}` : null,
    typeof schema.exclusiveMaximum === 'number' ? `less than ${schema.exclusiveMaximum}` : null,
    typeof schema.multipleOf === 'number' ? `a multiple of ${schema.multipleOf}` : null,
    range(schema.minLength, schema.maxLength, 'character'),
    range(schema.minItems, schema.maxItems, 'item'),
    schema.uniqueItems === true ? 'no repeats' : null,
    typeof schema.pattern === 'string' ? `matching /${schema.pattern}/` : null,
    typeof schema.format === 'string' ? `format ${schema.format}` : null,
  ];
  return out.filter((t): t is string => t !== null);
}

/** The object a schema is, or may be (the object branch of "object or null"), else null. */
function objectOf(schema: JsonSchema, root: JsonSchema): JsonSchema | null {
  const own = resolved(schema, root);
  if (isSchema(own.properties) || own.type === 'object') return own;
  const objects = (branches(own) ?? []).map((b) => resolved(b, root)).filter((b) => isSchema(b.properties) || b.type === 'object');
  return objects.length === 1 ? objects[0]! : null;
}

/** The `$ref` a field's object comes through (its own, or its one object branch's), if any. */
function objectRef(field: JsonSchema, root: JsonSchema): string | null {
  if (typeof field.$ref === 'string') return field.$ref;
  const viaRef = (branches(field) ?? []).filter((b) => objectOf(b, root) !== null);
  return viaRef.length === 1 && typeof viaRef[0]!.$ref === 'string' ? viaRef[0]!.$ref : null;
}

/**
 * `within`: the $refs whose objects enclose these fields. A field of one of
 * them again (a tree's node under a node) is listed and not opened: opened
 * to MAX_DEPTH, a node of five child nodes listed 585,937 fields.
 */
function fieldsOf(object: JsonSchema, root: JsonSchema, prefix: string, depth: number, within: ReadonlySet<string>): InputField[] {
  const properties = isSchema(object.properties) ? object.properties : {};
  const required = Array.isArray(object.required) ? object.required : [];
  return Object.keys(properties).flatMap((name) => {
    const given = isSchema(properties[name]) ? properties[name] : {};
    const ref = objectRef(given, root);
    const field = resolved(given, root);
    const path = prefix + name;
    const own: InputField = {
      path,
      type: typeText(field, root),
      bounds: boundsOf(field),
      required: required.includes(name),
      default: 'default' in field ? JSON.stringify(field.default) : null,
      description: typeof field.description === 'string' ? field.description : null,
    };
    const nested = depth < MAX_DEPTH && (ref === null || !within.has(ref)) ? objectOf(field, root) : null;
    if (!nested || !isSchema(nested.properties)) return [own];
    return [own, ...fieldsOf(nested, root, `${path}.`, depth + 1, ref === null ? within : new Set([...within, ref]))];
  });
}

/** A handler's input JSON Schema in words: its type, and each field's type, bounds, whether required, default. */
export function describeInputSchema(schema: JsonSchema): InputDescription {
  const object = objectOf(schema, schema);
  return {
    type: typeText(schema, schema),
    bounds: object ? [] : boundsOf(resolved(schema, schema)),
    fields: object ? fieldsOf(object, schema, '', 0, new Set(typeof schema.$ref === 'string' ? [schema.$ref] : [])) : [],
    otherFields: object ? object.additionalProperties !== false : true,
  };
}

/** Whether a type in words ("object or null") lets the value be null. */
function mayBeNull(type: string): boolean {
  return type.split(' or ').includes('null');
}

/**
 * Whether each field of an input must be given, in words (the Start run
 * form's and `runtrail handlers NAME`'s "required" column): "required",
 * "optional, default 2", "required if model is given". A field its object
 * requires is required only when that object is there: a field of an
 * optional object (or one that may be null) says so, else a reader takes
 * it for a field every input must have.
 */
export function requiredTexts(input: Pick<InputDescription, 'type' | 'fields'>): string[] {
  const { fields } = input;
  const inputMayBeNull = mayBeNull(input.type);
  return fields.map((field, i) => {
    if (!field.required) return field.default !== null ? `optional, default ${field.default}` : 'optional';
    // The objects enclosing it, innermost first: each is listed before its fields, by its path and a dot.
    const enclosing = fields
      .slice(0, i)
      .filter((outer) => field.path.startsWith(`${outer.path}.`))
      .sort((a, b) => b.path.length - a.path.length);
    // The innermost one that may be left out or null decides: when it is there, so is every object around it.
    const conditional = enclosing.filter((outer) => !outer.required || mayBeNull(outer.type));
    const innermost = conditional[0];
    if (innermost === undefined) return inputMayBeNull ? 'required unless the input is null' : 'required';
    const { path } = innermost;
    if (!mayBeNull(innermost.type)) return `required if ${path} is given`;
    // "Unless null" alone is true only when nothing around it may be left out.
    return innermost.required && conditional.length === 1 ? `required unless ${path} is null` : `required if ${path} is given and not null`;
  });
}

/**
 * An input the schema accepts: defaults where it has them, examples, else
 * the least value within its bounds for each required field (optional
 * fields without a default left out). For a pattern or format it cannot
 * satisfy it gives an empty string, which the server then refuses by name.
 */
export function exampleInput(schema: JsonSchema): unknown {
  return exampleOf(schema, schema, 0, { values: MAX_EXAMPLE_VALUES, chars: MAX_EXAMPLE_CHARS });
}

/**
 * How big an example gets, over all its values: arrays of at least 1,000
 * arrays of at least 1,000 strings of 1,000 characters were made in full,
 * more than a string can hold, and `minItems: 1e9` alone never finished.
 * Past these an example has fewer items or characters than the schema
 * asks, and the server refuses it by name, as for a pattern.
 */
const MAX_EXAMPLE_VALUES = 10_000;
const MAX_EXAMPLE_CHARS = 100_000;

interface ExampleBudget {
  values: number;
  chars: number;
}

function exampleOf(given: JsonSchema, root: JsonSchema, depth: number, budget: ExampleBudget): unknown {
  budget.values--;
  const schema = resolved(given, root);
  if ('default' in schema) return schema.default;
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if (depth > MAX_DEPTH) return null;
  const union = branches(schema);
  if (union && union.length > 0) return exampleOf(union.find((b) => !isNull(resolved(b, root))) ?? union[0]!, root, depth + 1, budget);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      // A field name is data: a field named "__proto__" is a key, not a new prototype.
      const out = dataRecord<unknown>();
      const properties = isSchema(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required : [];
      for (const name of Object.keys(properties)) {
        const field = resolved(isSchema(properties[name]) ? properties[name] : {}, root);
        if (required.includes(name) || 'default' in field) out[name] = exampleOf(field, root, depth + 1, budget);
      }
      return out;
    }
    case 'array': {
      const count = typeof schema.minItems === 'number' ? schema.minItems : 0;
      const items = isSchema(schema.items) ? schema.items : {};
      const out: unknown[] = [];
      while (out.length < count && budget.values > 0) out.push(exampleOf(items, root, depth + 1, budget));
      return out;
    }
    case 'string': {
      const length = Math.max(0, Math.min(typeof schema.minLength === 'number' ? schema.minLength : 0, budget.chars));
      budget.chars -= length;
      return 'x'.repeat(length);
    }
    case 'integer':
    case 'number':
      return numberExample(schema, type === 'integer');
    case 'boolean':
      return false;
    default:
      return null;
  }
}

function numberExample(schema: JsonSchema, integer: boolean): number {
  if (typeof schema.minimum === 'number') return integer ? Math.ceil(schema.minimum) : schema.minimum;
  if (typeof schema.exclusiveMinimum === 'number') {
    const low = schema.exclusiveMinimum;
    if (integer) return Math.floor(low) + 1;
    // The midpoint of an open interval is inside it; past the low end alone, one more.
    return typeof schema.exclusiveMaximum === 'number' ? (low + schema.exclusiveMaximum) / 2 : low + 1;
  }
  if (typeof schema.maximum === 'number' && schema.maximum < 0) return integer ? Math.floor(schema.maximum) : schema.maximum;
  if (typeof schema.exclusiveMaximum === 'number' && schema.exclusiveMaximum <= 0) return integer ? Math.ceil(schema.exclusiveMaximum) - 1 : schema.exclusiveMaximum - 1;
  return 0;
}
