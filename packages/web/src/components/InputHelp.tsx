import { describeInputSchema, type HandlerInput, type InputField } from '@runtrail/protocol';

/**
 * What input the chosen handler takes, before the user writes one: each
 * field's type, bounds, and whether it is required (or its default), from
 * the JSON Schema the server reports; or why the server has none to show.
 */
export function InputHelp({ handler, input }: { handler: string; input: HandlerInput }) {
  switch (input.kind) {
    case 'any':
      return <p className="muted">{handler} takes any input, or none: it was defined with no input schema.</p>;
    case 'unconvertible':
      return (
        <p className="muted">
          The input schema of {handler} cannot be shown ({input.reason}); the server still checks the input when the run starts.
        </p>
      );
    case 'elsewhere':
      return (
        <p className="muted">
          {handler} is defined on {input.nodes.join(', ')}, not on this server, which does not know its input schema: {input.nodes.length === 1 ? 'that node checks' : 'those nodes check'} the input when it runs.
        </p>
      );
    case 'schema':
      return <SchemaTable handler={handler} schema={input.schema} />;
  }
}

function SchemaTable({ handler, schema }: { handler: string; schema: Record<string, unknown> }) {
  const described = describeInputSchema(schema);
  const whole = `${handler} takes ${described.type}${described.bounds.length ? ` (${described.bounds.join(', ')})` : ''}`;
  if (described.fields.length === 0) return <p className="muted">{whole}.</p>;
  const whetherRequired = requiredTexts(described.fields, mayBeNull(described.type));
  return (
    <table className="input-help" aria-label={`input of ${handler}`}>
      <caption>
        {whole}
        {described.otherFields ? '' : '; other fields are refused'}:
      </caption>
      <thead>
        <tr>
          <th scope="col">field</th>
          <th scope="col">type</th>
          <th scope="col">bounds</th>
          <th scope="col">required</th>
        </tr>
      </thead>
      <tbody>
        {described.fields.map((field, i) => (
          <tr key={field.path}>
            <td>
              <code>{field.path}</code>
              {field.description && <div className="muted">{field.description}</div>}
            </td>
            <td>{field.type}</td>
            <td>{field.bounds.join(', ')}</td>
            <td>{whetherRequired[i]}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Whether a type in words ("object or null") lets the value be null. */
function mayBeNull(type: string): boolean {
  return type.split(' or ').includes('null');
}

/**
 * Each field's "required" column. A field its object requires is required
 * only when that object is there: a field of an optional object (or one
 * that may be null) says so, else a reader takes it for a field every
 * input must have. `inputMayBeNull`: the whole input may be null.
 */
export function requiredTexts(fields: readonly InputField[], inputMayBeNull = false): string[] {
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
