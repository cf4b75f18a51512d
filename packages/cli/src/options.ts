import { Option, type Command } from 'commander';
import type { ZodType } from 'zod';
import { CreateRunBody, RuntrailError, dataRecord, parseLabelPair } from '@runtrail/protocol';
import { configKeys, settings, type ConfigSources, type ServerConfigInput } from '@runtrail/server/config';

/**
 * The URL of a local `runtrail serve`: port RUNTRAIL_PORT (the variable
 * `serve` listens on, so the two agree; 0 means "any" to serve, so it is
 * not a port to call), else 4310.
 */
export function defaultServerUrl(env: Record<string, string | undefined> = process.env): string {
  const port = env.RUNTRAIL_PORT;
  return `http://127.0.0.1:${port && port !== '0' ? port : '4310'}`;
}

/** The server the command resolved, for an error that comes from no server (fetch's "fetch failed" names none). */
let resolvedUrl: string | undefined;

/** The server URL this process's command talks to, once it resolved one (see resolveServer in client.ts). */
export function serverInUse(): string | undefined {
  return resolvedUrl;
}

/** Kept here, not in client.ts, so that main.ts can name it without loading the SDK. */
export function rememberServer(url: string): void {
  resolvedUrl = url;
}

function defaultText(key: (typeof configKeys)[number]): string {
  const parsed = settings[key].schema.safeParse(undefined);
  if (!parsed.success || parsed.data === undefined) return '';
  const shown = Array.isArray(parsed.data) ? parsed.data.join(',') || '(none)' : String(parsed.data);
  return `, default ${shown}`;
}

/**
 * One flag per configuration key, derived from the server's settings table,
 * so `serve`, `demo` and `config` take every key and never drift from it.
 */
export function addServeOptions(cmd: Command): Command {
  cmd.option('--config <file>', 'settings file (JSON; env RUNTRAIL_CONFIG, default ./runtrail.json if present)');
  for (const key of configKeys) {
    const s = settings[key];
    const help = `${s.description} (env ${s.env}${defaultText(key)})`;
    if (s.kind === 'switch') {
      cmd.addOption(new Option(`--${s.flag}`, help));
      cmd.addOption(new Option(`--no-${s.flag}`, `turn ${s.flag} off`).hideHelp());
    } else {
      cmd.addOption(new Option(`--${s.flag} <${s.kind === 'list' ? 'a,b' : 'value'}>`, help));
    }
  }
  return cmd;
}

export interface ServeFlags {
  config?: string;
  [flag: string]: unknown;
}

/** The options and sources a serving command passes to startServer. */
export function serveOptions(flags: ServeFlags): ServerConfigInput & { sources: ConfigSources } {
  const options: Record<string, unknown> = {};
  for (const key of configKeys) {
    const attribute = new Option(`--${settings[key].flag}`).attributeName();
    if (flags[attribute] !== undefined) options[key] = flags[attribute];
  }
  return { ...(options as ServerConfigInput), sources: { file: flags.config, explicit: 'flag' } };
}

/** What an unauthorized error tells a CLI user who set no token (the server's words are for any HTTP client). */
export const CLI_TOKEN_HINT = 'the CLI sends the token in RUNTRAIL_TOKEN, which is not set';

/**
 * Commander's collector of a repeatable option (`--label a=1 --label b=2`).
 * It starts from no default (undefined) rather than `[]`, which help would show as "(default: [])".
 */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Repeated `--label k=v` filter flags (each may be `k=v,k=v` too) as the API's one `label` filter: all must match. */
export function labelFilter(flags: string[] | undefined): string | undefined {
  return flags && flags.length > 0 ? flags.join(',') : undefined;
}

/** `--label key=value` flags as a run's labels. */
export function parseLabels(pairs: string[]): Record<string, string> {
  // A label key is data: "__proto__" must be a key, not a new prototype.
  const labels = dataRecord<string>();
  for (const pair of pairs) {
    const [key, value] = parseLabelPair(pair, '--label');
    // A run has one value per label: a second one silently replaced the first (`--label env=dev --label env=prod`).
    if (Object.hasOwn(labels, key) && labels[key] !== value) {
      throw new RuntrailError('invalid_request', `--label ${key} given twice, "${labels[key]}" and "${value}": a label has one value`);
    }
    labels[key] = value;
  }
  // Checked here as the API would, so a label too long is refused naming it as typed, before a run or a command starts.
  const parsed = CreateRunBody.shape.labels.safeParse(labels);
  const issue = parsed.error?.issues[0];
  if (issue) {
    const key = issue.path[0];
    // A key the schema refuses comes as invalid_key, its reason in the issues under it.
    if (issue.code === 'invalid_key' && typeof key === 'string' && issue.issues[0]) throw refusal('a --label key', issue.issues[0], key);
    throw refusal(typeof key === 'string' ? `--label ${clipped(key)}` : '--label', issue, typeof key === 'string' ? labels[key] : undefined);
  }
  return labels;
}

/**
 * The parser of an option whose text fills one field of an API request (a
 * run's name, a cancel reason, a filter): checked when the command line is
 * read, by the API's own schema for that field, so a value it would refuse
 * is an error naming the flag (`--name is 3000 characters long; at most
 * 200`) before anything is done, not the server naming its field
 * (`invalid request body: name: Too big…`, or `invalid query:
 * nameContains`). Not commander's InvalidArgumentError, whose message
 * would quote the whole value.
 */
export function apiText(flag: string, field: ZodType): (value: string) => string {
  return (value) => {
    // An empty value is refuseEmptyValues' to say, in the same words for every flag.
    if (value === '') return value;
    const issue = field.safeParse(value).error?.issues[0];
    if (issue) throw refusal(flag, issue, value);
    return value;
  };
}

/** `what` refused for the schema's `issue`: a length said in characters as typed, else the schema's words. */
function refusal(what: string, issue: { code: string; message: string; maximum?: unknown }, value: string | undefined): RuntrailError {
  const text =
    issue.code === 'too_big' && typeof issue.maximum === 'number' && value !== undefined
      ? `${what} is ${value.length} characters long; at most ${issue.maximum}`
      : `${what}: ${issue.message}`;
  return new RuntrailError('invalid_request', text);
}

/** A flag's value quoted in an error: its start, when it is long. */
function clipped(text: string): string {
  return text.length <= 40 ? text : `${text.slice(0, 40)}… (${text.length} characters)`;
}
