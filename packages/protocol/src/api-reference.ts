import { z } from 'zod';
import { CLIENT_HEADER } from './auth.js';
import { errorStatus, type ErrorCode } from './errors.js';
import { extraFieldsOf, knownEventTypes, eventDataSchemas } from './events.js';
import { openApiDocument } from './openapi.js';
import { routes } from './routes.js';
import { TEXT_RULES } from './text.js';

/**
 * The HTTP API reference in Markdown, rendered from the OpenAPI document
 * (itself generated from the route table and the zod schemas), the event
 * schemas and the error table, so the docs cannot drift from the code
 * (`docs/api.md` is this function's output; a test checks the committed file
 * is current).
 */
export function renderApiReference(): string {
  const doc = openApiDocument() as unknown as OpenApi;
  const out: string[] = [
    '# runtrail HTTP API reference',
    '',
    '<!-- Generated from packages/protocol (the OpenAPI document of openapi.ts, events.ts, errors.ts) by `npm run docs`. Do not edit by hand. -->',
    '',
    'Bodies are JSON, except the raw content of `putArtifact` and the tar archive of `importRun`. Times are epoch milliseconds. Errors are `{"error": {"code", "message", "details"}}`.',
    `The machine-readable description is OpenAPI 3.1 at \`${routes.openapi.path}\`; a running server shows it as a page at \`${routes.apiDocs.path}\`.`,
    `Auth: ${Object.values(doc.components.securitySchemes).map((scheme) => scheme.description).join(' ')}`,
    `A POST, PUT or DELETE without a JSON body (no \`content-type: application/json\`) and without \`Authorization\` needs an \`${CLIENT_HEADER}\` header (any value), or gets 403 \`forbidden\`: the routes below that need it list it under Headers.`,
    "The optional request headers a route reads (`idempotency-key`, `last-event-id`, `range`, …) are listed there too (in the OpenAPI document: the operation's optional header parameters).",
    '',
    'Text the stores keep as text is checked alike on every store (PostgreSQL cannot hold NUL), and refused with 400 `invalid_request` naming the field:',
    `names and identifiers (run names, label keys and values, parent and other ids, owners, event types and ids, phase, metric and counter names, token names, the list filters, ids in paths, and those of an imported run) ${TEXT_RULES.name};`,
    `free text (error messages, cancel reasons) ${TEXT_RULES.free}, so newlines and tabs are kept; and none ${TEXT_RULES.surrogate.replace('must not contain', 'may contain')}.`,
    'Free-form JSON (run input, event data beyond the fields above, output, artifact metadata) keeps any character, NUL included.',
    '',
    '## Routes',
    '',
    '| method | path | what it does | success |',
    '|---|---|---|---|',
  ];
  const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })),
  );
  for (const { path, method, op } of operations) {
    const status = Object.keys(op.responses).find((k) => k !== 'default')!;
    out.push(`| ${method} | \`${path}\` | ${op.summary} | ${status} |`);
  }
  for (const { path, method, op } of operations) {
    const query = (op.parameters ?? []).filter((p) => p.in === 'query');
    const headers = (op.parameters ?? []).filter((p) => p.in === 'header');
    const body = op.requestBody?.content['application/json']?.schema;
    const [status, answer] = Object.entries(op.responses).find(([k]) => k !== 'default')!;
    const response = answer.content?.['application/json']?.schema;
    if (query.length === 0 && headers.length === 0 && !body && !response) continue;
    out.push('', `### ${method} ${path} (\`${op.operationId}\`)`, '');
    if (headers.length > 0) {
      out.push('Headers:', '', '| header | required | what |', '|---|---|---|');
      for (const h of headers) out.push(`| \`${h.name}\` | ${h.required ? 'yes' : 'no'} | ${h.description ?? ''} |`);
      out.push('');
    }
    if (query.length > 0) {
      out.push('Query:', '', '| field | type | required |', '|---|---|---|');
      for (const p of query) out.push(`| \`${p.name}\` | ${typeText(p.schema)} | ${p.required ? 'yes' : 'no'} |`);
      out.push('');
    }
    if (body) out.push('Body:', '', ...fieldTable(body), '');
    if (response) out.push(`Response ${status}: ${response.$ref ? refName(response.$ref) : inlineJson(response)}`, '');
  }
  const components = doc.components.schemas;
  out.push('', '## Response types', '');
  for (const [name, schema] of Object.entries(components)) {
    if (name === 'ClientMessage' || name === 'ServerMessage') continue;
    out.push(`### ${name}`, '', ...(schema.description ? [schema.description, ''] : []), ...fieldTable(schema), '');
  }
  out.push(
    '## Stream messages',
    '',
    'WebSocket client messages (`ClientMessage`):',
    '',
    ...(components.ClientMessage?.oneOf ?? components.ClientMessage?.anyOf ?? []).map((m) => `- ${inlineJson(m)}`),
    '',
    'WebSocket server messages (`ServerMessage`):',
    '',
    ...(components.ServerMessage?.oneOf ?? components.ServerMessage?.anyOf ?? []).map((m) => `- ${inlineJson(m)}`),
    '',
  );
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
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
  description?: string;
  $ref?: string;
}

interface OpenApiOperation {
  operationId: string;
  summary: string;
  parameters?: Array<{ name: string; in: string; required: boolean; schema: JsonSchema; description?: string }>;
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: JsonSchema }> }>;
}

interface OpenApi {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, { description: string }> };
}

const refName = (ref: string) => `\`${ref.split('/').pop()!}\``;

function fieldTable(json: JsonSchema): string[] {
  const rows = ['| field | type | required |', '|---|---|---|'];
  for (const [name, prop] of Object.entries(json.properties ?? {})) {
    rows.push(`| \`${name}\` | ${typeText(prop)} | ${json.required?.includes(name) ? 'yes' : 'no'} |`);
  }
  return rows;
}

function inlineJson(json: JsonSchema): string {
  const props = Object.entries(json.properties ?? {});
  if (props.length === 0) return json.type === 'object' ? 'object (any keys)' : typeText(json);
  return `{${props.map(([name, prop]) => `\`${name}${json.required?.includes(name) ? '' : '?'}\`: ${typeText(prop)}`).join(', ')}}`;
}

function inline(schema: z.ZodType): string {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return inlineJson(json).replace(/^\{(.*)\}$/, '$1');
}

function typeText(prop: JsonSchema): string {
  if (prop.$ref) return refName(prop.$ref);
  if (prop.const !== undefined) return `\`${String(prop.const)}\``;
  if (prop.enum) return prop.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (prop.anyOf) return prop.anyOf.map(typeText).join(' \\| ');
  if (prop.oneOf) return prop.oneOf.map(typeText).join(' \\| ');
  if (prop.type === 'array') {
    if (prop.prefixItems) return `[${prop.prefixItems.map(typeText).join(', ')}]`;
    const item = prop.items ? typeText(prop.items) : 'any';
    // An array of a union: (A | B)[], not A | B[].
    return item.includes(' \\| ') ? `(${item})[]` : `${item}[]`;
  }
  if (prop.type === 'object' && typeof prop.additionalProperties === 'object' && !prop.properties) {
    return `map of ${typeText(prop.additionalProperties)}`;
  }
  if (Array.isArray(prop.type)) return prop.type.join(' \\| ');
  return prop.type ?? 'any';
}
