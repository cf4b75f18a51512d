import { Option, type Command } from 'commander';
import { configKeys, settings, type ConfigSources, type ServerConfigInput } from '@runtrail/server';

/** The server a client command talks to: --server, else RUNTRAIL_URL, else the local default. */
export function serverUrl(cmd: Command): string {
  const opts = cmd.optsWithGlobals<{ server?: string }>();
  return opts.server ?? process.env.RUNTRAIL_URL ?? 'http://127.0.0.1:4310';
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
