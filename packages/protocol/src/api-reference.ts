import { z } from 'zod';
import { errorStatus, type ErrorCode } from './errors.js';
import { extraFieldsOf, knownEventTypes, eventDataSchemas } from './events.js';
import { routes, type RouteDef } from './routes.js';

/**
 * The HTTP API reference in Markdown, generated from the route table, the
 * request schemas, the event schemas and the error table, so the docs cannot
 * drift from the code (`docs/api.md` is this function's output; a test
 * checks the committed file is current).
 */
export function renderApiReference(): string {
  const out: string[] = [
    '# runtrail HTTP API reference',
    '',
    '<!-- Generated from packages/protocol (routes.ts, run.ts, events.ts, errors.ts) by `npm run docs`. Do not edit by hand. -->',
    '',
    'All bodies are JSON. Times are epoch milliseconds. Errors are `{"error": {"code", "message", "details"}}`.',
    '',
    '## Routes',
    '',
    '| method | path | what it does |',
    '|---|---|---|',
  ];
  for (const route of Object.values(routes) as RouteDef[]) {
    out.push(`| ${route.method} | \`${route.path}\` | ${route.summary} |`);
  }
  for (const [name, route] of Object.entries(routes) as Array<[string, RouteDef]>) {
    if (!route.body && !route.query) continue;
    out.push('', `### ${route.method} ${route.path} (\`${name}\`)`, '');
    if (route.query) out.push('Query:', '', ...fieldTable(route.query), '');
    if (route.body) out.push('Body:', '', ...fieldTable(route.body), '');
  }
  out.push(
    '',
    '## Event types',
    '',
    'Producers append `{type, data, id?, ts?}`. `data` of each known type, and what happens to a field of `data` the type does not define:',
    '**kept** (stored and streamed exactly as sent; the reducer ignores it) or **refused** (the whole batch gets 400 `invalid_request` naming the field,',
    'e.g. `events[0].data.totl`, and nothing is stored). No field is ever dropped silently.',
    '',
  );
  out.push('| type | data | unknown fields |', '|---|---|---|');
  for (const type of knownEventTypes) {
    out.push(`| \`${type}\` | ${inline(eventDataSchemas[type])} | ${extraFieldsOf(type)} |`);
  }
  out.push('| `x.*` | anything: stored and streamed, ignored by the reducer | kept |');
  out.push('', '## Error codes', '', '| code | HTTP status |', '|---|---|');
  for (const [code, status] of Object.entries(errorStatus) as Array<[ErrorCode, number]>) {
    out.push(`| \`${code}\` | ${status} |`);
  }
  return `${out.join('\n')}\n`;
}

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  description?: string;
  minimum?: number;
  maximum?: number;
}

function schemaOf(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

function fieldTable(schema: z.ZodType): string[] {
  const json = schemaOf(schema);
  const rows = ['| field | type | required |', '|---|---|---|'];
  for (const [name, prop] of Object.entries(json.properties ?? {})) {
    rows.push(`| \`${name}\` | ${typeText(prop)} | ${json.required?.includes(name) ? 'yes' : 'no'} |`);
  }
  return rows;
}

function inline(schema: z.ZodType): string {
  const json = schemaOf(schema);
  const props = Object.entries(json.properties ?? {});
  if (props.length === 0) return json.type === 'object' ? 'object (any keys)' : typeText(json);
  return props
    .map(([name, prop]) => `\`${name}${json.required?.includes(name) ? '' : '?'}\`: ${typeText(prop)}`)
    .join(', ');
}

function typeText(prop: JsonSchema): string {
  if (prop.enum) return prop.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (prop.anyOf) return prop.anyOf.map(typeText).join(' \\| ');
  if (prop.type === 'array') return `${prop.items ? typeText(prop.items) : 'any'}[]`;
  if (Array.isArray(prop.type)) return prop.type.join(' \\| ');
  return prop.type ?? 'any';
}
