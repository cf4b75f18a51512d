import type { Command } from 'commander';

export function registerDelete(program: Command): void {
  program
    .command('delete <id>')
    .description('delete an ended run with its events, output log and every run under it (a running one must be cancelled first)')
    .option('--json', 'print {"id": ID, "deleted": true} as JSON')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => (await import('../actions/delete.js')).deleteRun(id, flags, cmd));
}
