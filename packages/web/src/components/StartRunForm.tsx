import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { dataRecord, exampleInput, type HandlersResponse } from '@runtrail/protocol';
import { client, messageOf } from '../client.js';
import { TRY_AGAIN, problemText } from '../problem-text.js';
import { InputHelp } from './InputHelp.js';

type HandlerEntry = HandlersResponse['inputs'][number];

/** The input a handler's form starts with: an example its schema accepts (its defaults), or none where the schema is not known here. */
function exampleText(entry: HandlerEntry | undefined): string {
  return entry?.input.kind === 'schema' ? JSON.stringify(exampleInput(entry.input.schema), null, 2) : '';
}

/** `key=value` pairs separated by commas, as the runs filter takes them. */
function parseLabels(text: string): { ok: true; value: Record<string, string> } | { ok: false; error: string } {
  // A label key is data: "__proto__" must be a key, not a new prototype.
  const value = dataRecord<string>();
  for (const pair of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return { ok: false, error: `"${pair}" is not key=value` };
    value[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return { ok: true, value };
}

function parseInput(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, error: messageOf(err) };
  }
}

/** Start any handler the server has registered, with a JSON input checked as it is typed. */
export function StartRunForm({ onStarted, onClose }: { onStarted: (runId: string) => void; onClose: () => void }) {
  const [handlers, setHandlers] = useState<HandlerEntry[] | null>(null);
  const [handler, setHandler] = useState('');
  const [input, setInput] = useState('');
  // What the form last filled in: a handler chosen next replaces it, but never what the user typed.
  const [filled, setFilled] = useState('');
  const [labelsText, setLabelsText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputHelp = useId();
  const first = useRef<HTMLSelectElement>(null);
  // Opened from the keyboard or a click, the panel takes the focus to its first field.
  useEffect(() => first.current?.focus(), []);
  // Escape closes it, as a panel that opened over the list is expected to (unless a menu of the form is open).
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && !e.defaultPrevented) {
      e.preventDefault();
      onClose();
    }
  };

  useEffect(() => {
    let live = true;
    // Behind a load balancer any node takes a run another live node can execute.
    client.describeHandlers().then(
      ({ inputs }) => {
        if (!live) return;
        const names = inputs.map((entry) => entry.handler);
        const initial = names.includes('demo-pipeline') ? 'demo-pipeline' : (names[0] ?? '');
        setHandlers(inputs);
        setHandler(initial);
        const example = exampleText(inputs.find((entry) => entry.handler === initial));
        // Typed while the handlers loaded: theirs stays, and a handler chosen next does not replace it either.
        setInput((typed) => (typed === '' ? example : typed));
        setFilled(example);
      },
      (err: unknown) => live && setError(problemText(err, 'could not list handlers', TRY_AGAIN)),
    );
    return () => {
      live = false;
    };
  }, []);

  const chosen = handlers?.find((entry) => entry.handler === handler);
  const choose = (name: string) => {
    setHandler(name);
    if (input !== filled) return;
    const example = exampleText(handlers?.find((entry) => entry.handler === name));
    setInput(example);
    setFilled(example);
  };
  const parsed = parseInput(input);
  const labels = parseLabels(labelsText);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!parsed.ok || !labels.ok || handler === '') return;
    setBusy(true);
    setError(null);
    client
      .startRun({ name: handler, input: parsed.value, labels: labels.value })
      .then((run) => onStarted(run.id))
      .catch((err: unknown) => setError(problemText(err, 'could not start the run', TRY_AGAIN)))
      .finally(() => setBusy(false));
  };

  return (
    <form className="panel start-run" onSubmit={submit} onKeyDown={onKeyDown} aria-label="start a run">
      <header className="panel-head">
        <h2>Start a run</h2>
        <button type="button" className="link" onClick={onClose} aria-label="close start a run">
          ✕
        </button>
      </header>
      <label>
        Handler
        {/* Not disabled while the handlers load: it holds the focus from the start ("loading…" starts nothing). */}
        <select ref={first} aria-label="handler" aria-busy={handlers === null} value={handler} onChange={(e) => choose(e.target.value)}>
          {handlers === null && <option value="">loading…</option>}
          {handlers?.length === 0 && <option value="">no handlers registered on this server</option>}
          {handlers?.map(({ handler: name }) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>
      {chosen && <InputHelp handler={chosen.handler} input={chosen.input} />}
      <label>
        Input (JSON)
        <textarea
          aria-label="run input as JSON"
          aria-invalid={!parsed.ok}
          aria-describedby={inputHelp}
          rows={6}
          spellCheck={false}
          value={input}
          onChange={(e) => setInput(e.target.value)}
        />
      </label>
      <p id={inputHelp} className={parsed.ok ? 'muted' : 'invalid'} role={parsed.ok ? undefined : 'alert'}>
        {parsed.ok ? 'Passed to the handler as its input; leave empty for none.' : `Not valid JSON: ${parsed.error}`}
      </p>
      <label>
        Labels
        <input
          aria-label="run labels (key=value, comma separated)"
          aria-invalid={!labels.ok}
          placeholder="key=value, key2=value2"
          value={labelsText}
          onChange={(e) => setLabelsText(e.target.value)}
        />
      </label>
      {!labels.ok && (
        <p className="invalid" role="alert">
          {labels.error}
        </p>
      )}
      {error && (
        <p className="invalid" role="alert">
          {error}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy || !parsed.ok || !labels.ok || handler === ''}>
          {busy ? 'Starting…' : 'Start'}
        </button>
      </div>
    </form>
  );
}
