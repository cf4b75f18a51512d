import type { Command } from 'commander';
import { RuntrailError, describeInputSchema, exampleInput, requiredTexts, type HandlerInput, type HandlersResponse } from '@runtrail/protocol';
import { clientFor } from '../client.js';
import { note, print, printJson, table, terminalSafe } from '../output.js';

type HandlerEntry = HandlersResponse['inputs'][number];

/** `runtrail handlers [NAME]`. */
export async function describeHandlers(name: string | undefined, flags: { json?: boolean }, cmd: Command): Promise<void> {
  const answer = await clientFor(cmd).describeHandlers();
  if (name === undefined) {
    if (flags.json) return printJson(answer);
    if (answer.inputs.length === 0) return note('no handlers: no live node defines one (a node defines one with define(name, handler) in its program, or `runtrail serve --handlers FILE`)');
    print(table(['HANDLER', 'NODES', 'INPUT'], answer.inputs.map((entry) => [entry.handler, entry.nodes.join(', ') || '-', inputSummary(entry.input)])));
    note('`runtrail handlers NAME` shows the input a handler takes');
    return;
  }
  const entry = answer.inputs.find((e) => e.handler === name);
  if (!entry) {
    const known = answer.inputs.map((e) => e.handler);
    throw new RuntrailError(
      'handler_not_found',
      `no live node defines a handler named "${name}"; ${known.length ? `known handlers: ${known.join(', ')}` : 'no handlers are defined'}`,
      { name, handlers: known },
    );
  }
  if (flags.json) return printJson(entry);
  // Names, enum values and patterns are the server's text: a control sequence in one is shown, not obeyed.
  print(terminalSafe(handlerText(entry)));
}

/** One line of the handlers table: what input the handler takes, in short. */
function inputSummary(input: HandlerInput): string {
  switch (input.kind) {
    case 'schema': {
      const described = describeInputSchema(input.schema);
      return described.fields.length ? `${described.type}: ${described.fields.filter((f) => !f.path.includes('.')).map((f) => f.path).join(', ')}` : described.type;
    }
    case 'any':
      return 'any (no schema)';
    case 'unconvertible':
      return 'not shown (no JSON Schema)';
    case 'elsewhere':
      return 'known only on its nodes';
  }
}

/** A handler's input schema as a reader wants it: the whole input's type, a table of its fields, and an input it accepts. */
function handlerText(entry: HandlerEntry): string {
  const head = `${entry.handler}, defined on ${entry.nodes.join(', ') || 'no live node'}`;
  const { input } = entry;
  switch (input.kind) {
    case 'any':
      return `${head}\ninput: any, or none (it was defined with no input schema)`;
    case 'unconvertible':
      return `${head}\ninput: its schema cannot be shown (${input.reason}); the server still checks the input when a run starts`;
    case 'elsewhere':
      return `${head}\ninput: not known to this server: only ${input.nodes.join(', ')} ${input.nodes.length === 1 ? 'knows' : 'know'} its schema, and checks the input when it runs (\`runtrail --server URL-OF-THAT-NODE handlers ${entry.handler}\` shows it)`;
    case 'schema': {
      const described = describeInputSchema(input.schema);
      const whole = `input: ${described.type}${described.bounds.length ? ` (${described.bounds.join(', ')})` : ''}${described.fields.length && !described.otherFields ? '; other fields are refused' : ''}`;
      const required = requiredTexts(described);
      const rows = described.fields.map((f, i) => [f.path, f.type, f.bounds.join(', '), required[i]!, f.description ?? '']);
      const fields = rows.length ? `\n${table(['FIELD', 'TYPE', 'BOUNDS', 'REQUIRED', 'DESCRIPTION'], rows)}` : '';
      return `${head}\n${whole}${fields}\nexample: ${JSON.stringify(exampleInput(input.schema))}`;
    }
  }
}
