import type { Command } from 'commander';

/** `runtrail handlers [NAME]`: what runs `runtrail start` can start, and what input each takes. */
export function registerHandlers(program: Command): void {
  program
    .command('handlers [name]')
    .description("the handlers the server's live nodes define and which nodes define each; with NAME, that handler's input schema")
    .option('--json', 'print the whole GET /handlers answer as JSON (with NAME, that handler: {handler, nodes, input})')
    .addHelpText('after', '\nExamples:\n  runtrail handlers\n  runtrail handlers demo-pipeline\n  runtrail handlers --json | jq \'.inputs[] | select(.input.kind == "schema")\'')
    .action(async (name: string | undefined, flags: { json?: boolean }, cmd: Command) => (await import('../actions/handlers.js')).describeHandlers(name, flags, cmd));
}
