import type { Command } from 'commander';

const PROGRESS = 'show a progress line on stderr (default: when it is a terminal)';

export function registerArchive(program: Command): void {
  program
    .command('export <run>')
    .description('write a run (record, events, artifacts) as one tar archive')
    .option('-o, --output <file>', 'where to write it: a file, a folder, or - for stdout (default ./runtrail-<run>.tar, with --family ./runtrail-<run>-family.tar)')
    .option('--family', 'with every run under it (children, theirs…), imported all at once; refused while any of them has not ended')
    .option('--progress', PROGRESS)
    .option('--no-progress', 'never show one')
    .action(async (runId: string, flags: { output?: string; family?: boolean; progress?: boolean }, cmd: Command) => (await import('../actions/archive.js')).exportRun(runId, flags, cmd));

  program
    .command('import <file>')
    .description('load a run exported with `runtrail export` (a file, or - for stdin) into a server; it keeps its id (a --family export: every run in it, all or none)')
    .option('--progress', PROGRESS)
    .option('--no-progress', 'never show one')
    .option('--json', 'print the imported run as JSON')
    .action(async (file: string, flags: { progress?: boolean; json?: boolean }, cmd: Command) => (await import('../actions/archive.js')).importRun(file, flags, cmd));
}
