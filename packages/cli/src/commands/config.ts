import type { Command } from 'commander';
import { configKeys, describeConfig, resolveConfig } from '@runtrail/server/config';
import { addServeOptions, serveOptions, type ServeFlags } from '../options.js';
import { printJson } from '../output.js';

export function registerConfig(program: Command): void {
  addServeOptions(
    program
      .command('config')
      .description('print the configuration `serve` would use with these flags (secrets masked) and where each value came from')
      .option('--json', 'print {config, origins, file} as JSON'),
  ).action((flags: ServeFlags & { json?: boolean }) => {
    const { sources, ...options } = serveOptions(flags);
    const resolved = resolveConfig(options, sources);
    for (const warning of resolved.warnings) process.stderr.write(`runtrail: warning: ${warning}\n`);
    const shown = describeConfig(resolved.config);
    if (flags.json) {
      printJson({ config: shown, origins: resolved.origins, file: resolved.file ?? null });
      return;
    }
    const rows = configKeys.map((key) => [key, format(shown[key]), resolved.origins[key]] as const);
    const width = (i: 0 | 1) => Math.max(...rows.map((r) => r[i].length));
    const [w0, w1] = [width(0), width(1)];
    process.stdout.write(`config file: ${resolved.file ?? '(none)'}\n`);
    for (const [key, value, origin] of rows) {
      process.stdout.write(`${key.padEnd(w0)}  ${value.padEnd(w1)}  ${origin}\n`);
    }
  });
}

function format(value: unknown): string {
  if (value === undefined) return '(unset)';
  if (Array.isArray(value)) return value.join(',') || '(none)';
  return String(value);
}
