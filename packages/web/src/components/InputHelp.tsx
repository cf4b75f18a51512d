import { describeInputSchema, requiredTexts, type HandlerInput } from '@runtrail/protocol';

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
  const whetherRequired = requiredTexts(described);
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
