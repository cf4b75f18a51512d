import type { Command } from 'commander';
import { addServeOptions, type ServeFlags } from '../options.js';

export function registerServe(program: Command): void {
  addServeOptions(program.command('serve').description('serve the API, the live streams and the dashboard'))
    .option(
      '--handlers <file>',
      "a module of your handlers, loaded before serving (export default (rt) => { rt.define('name', async (ctx) => …) }, or an object of handlers by name); repeatable",
      (file: string, files: string[] | undefined) => [...(files ?? []), file],
    )
    .option('--no-demo-handler', "do not define demo-pipeline (a production node's dashboard then offers only your handlers to start)")
    .action(async (flags: ServeFlags & { handlers?: string[]; demoHandler: boolean }) => (await import('../actions/serve.js')).serve(flags));
}
