import type { RunEvent } from '@runtrail/protocol';
import { formatDuration, formatNumber, formatSize, formatTime } from '../format.js';
import { errorParts } from './error-headline.js';

type Data = Record<string, unknown>;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** A value inline: text as it is, numbers at a readable precision, anything else as one-line JSON. */
function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatNumber(v);
  return JSON.stringify(v) ?? String(v);
}

/** `key: value` pairs of the fields not already said, joined with a middle dot. */
function fields(data: Data, said: readonly string[] = []): string {
  return Object.entries(data)
    .filter(([key]) => !said.includes(key))
    .map(([key, value]) => `${key}: ${valueText(value)}`)
    .join(' · ');
}

const joined = (...parts: Array<string | null | false | undefined>) => parts.filter(Boolean).join(' · ');

/** Each call's label by its id (from its `call.started`), so a call's later events can name it. */
export function callLabels(events: readonly RunEvent[]): Map<string, string> {
  const labels = new Map<string, string>();
  for (const e of events) {
    const data = e.data as { callId?: unknown; label?: unknown } | null;
    if (e.type === 'call.started' && typeof data?.callId === 'string' && typeof data.label === 'string' && data.label) labels.set(data.callId, data.label);
  }
  return labels;
}

/**
 * One line that says what an event is about, in words, for the event log's
 * collapsed row: "loss = 0.0116 at step 198" rather than
 * {"name":"loss","value":0.011604570060700484,"step":198}. A call's later
 * events name it by the label its `call.started` gave (`labels`, by call
 * id). The whole data stays one click away, in the expanded row.
 */
export function eventSummary(event: RunEvent, labels: ReadonlyMap<string, string>): string {
  const raw = event.data;
  if (raw === undefined || raw === null) return '';
  if (typeof raw !== 'object' || Array.isArray(raw)) return JSON.stringify(raw);
  const d = raw as Data;
  const call = () => {
    const id = str(d.callId);
    return id === null ? 'call' : (labels.get(id) ?? id);
  };
  switch (event.type) {
    case 'log':
      return joined(str(d.message) ?? '', fields(d, ['level', 'message', 'stream']));
    case 'phase':
      return joined(`${valueText(d.name)} ${valueText(d.status)}`, num(d.timeoutMs) !== null && `timeout ${formatDuration(num(d.timeoutMs))}`);
    case 'call.started':
      return joined(str(d.label) || call(), fields(d, ['callId', 'label']));
    case 'call.succeeded':
      return joined(`${call()} succeeded${num(d.durationMs) !== null ? ` in ${formatDuration(num(d.durationMs))}` : ''}`, fields(d, ['callId', 'durationMs']));
    case 'call.failed':
      return joined(
        `${call()} failed${d.willRetry === true ? ', will retry' : ''}: ${errorParts(str(d.error) ?? valueText(d.error)).head}`,
        fields(d, ['callId', 'error', 'willRetry']),
      );
    case 'call.retried':
      return joined(`${call()}: attempt ${valueText(d.attempt)}`, fields(d, ['callId', 'attempt']));
    case 'progress':
      return joined(
        `${valueText(d.done)}${d.total !== undefined ? ` of ${valueText(d.total)}` : ''} done`,
        str(d.message),
      );
    case 'metric':
      return `${valueText(d.name)} = ${valueText(d.value)}${d.step !== undefined ? ` at step ${valueText(d.step)}` : ''}`;
    case 'counter': {
      const delta = num(d.delta);
      return `${valueText(d.name)} ${delta !== null && delta >= 0 ? '+' : ''}${valueText(d.delta)}`;
    }
    case 'artifact':
      // What the Artifacts panel shows of it; the ordinal, hash and time stay in the expanded row.
      return joined(
        valueText(d.name),
        str(d.contentType),
        num(d.size) !== null && formatSize(num(d.size)!),
        str(d.uri) !== null && `link ${str(d.uri)}`,
        fields(d, ['name', 'contentType', 'size', 'uri', 'ordinal', 'sha256', 'createdAt']),
      );
    case 'run.cancel_requested':
      return str(d.reason) ? `cancel requested: ${str(d.reason)}` : 'cancel requested (no reason given)';
    case 'run.stalled':
      return joined(
        `no progress within ${formatDuration(num(d.stallTimeoutMs))}`,
        num(d.lastProgressAt) === null ? 'no progress yet' : `last progress at ${formatTime(num(d.lastProgressAt))}`,
      );
    case 'run.succeeded':
      return d.output === undefined ? 'succeeded' : `output: ${valueText(d.output)}`;
    case 'run.failed': {
      const error = (d.error ?? {}) as Data;
      return joined(`${str(error.kind) ?? 'error'}: ${errorParts(str(error.message) ?? '').head}`, d.output !== undefined && `output: ${valueText(d.output)}`);
    }
    case 'run.cancelled':
      return str(d.reason) ?? 'cancelled';
    default:
      return fields(d);
  }
}
