import type { Command } from 'commander';
import type { PutFlags } from '../actions/artifacts.js';

const PROGRESS = 'show a progress line on stderr (default: when it is a terminal)';

export function registerArtifacts(program: Command): void {
  const artifacts = program.command('artifacts').description("list, download and upload a run's artifacts");

  artifacts
    .command('ls <run>')
    .alias('list')
    .description("a run's artifacts in the order they were stored")
    .option('--json', 'print JSON')
    .action(async (runId: string, flags: { json?: boolean }, cmd: Command) => (await import('../actions/artifacts.js')).listArtifacts(runId, flags, cmd));

  artifacts
    .command('get <run> <name>')
    .description('download an artifact (to ./<name>, or -o FILE, or -o - for stdout)')
    .option('-o, --output <file>', 'where to write it: a file, a folder, or - for stdout')
    .option('--progress', PROGRESS)
    .option('--no-progress', 'never show one')
    .action(async (runId: string, name: string, flags: { output?: string; progress?: boolean }, cmd: Command) => (await import('../actions/artifacts.js')).getArtifact(runId, name, flags, cmd));

  artifacts
    .command('put <run> <file>')
    .description('upload a file as an artifact of a running run')
    .option('--name <name>', 'artifact name (default: the file name)')
    .option('--content-type <type>', 'media type (default: sniffed by the server)')
    .option('--metadata <json>', 'free JSON metadata')
    .option('--replace', 'replace different content stored under the same name')
    .option('--json', 'print the stored artifact as JSON (as `artifacts ls --json` lists it)')
    .option('--progress', PROGRESS)
    .option('--no-progress', 'never show one')
    .action(async (runId: string, file: string, flags: PutFlags, cmd: Command) => (await import('../actions/artifacts.js')).putArtifact(runId, file, flags, cmd));
}
