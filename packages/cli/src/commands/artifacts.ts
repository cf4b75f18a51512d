import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { RuntrailError, type Artifact } from '@runtrail/protocol';
import { clientFor } from '../options.js';
import { note, print, printJson, table } from '../output.js';
import { downloadTarget, fileToUpload, saveDownload } from '../transfer.js';

const PROGRESS = 'show a progress line on stderr (default: when it is a terminal)';

export function registerArtifacts(program: Command): void {
  const artifacts = program.command('artifacts').description("list, download and upload a run's artifacts");

  artifacts
    .command('ls <run>')
    .alias('list')
    .description("a run's artifacts in the order they were stored")
    .option('--json', 'print JSON')
    .action(async (runId: string, flags: { json?: boolean }, cmd: Command) => {
      const list = await clientFor(cmd).listArtifacts(runId);
      if (flags.json) return printJson({ artifacts: list });
      if (list.length === 0) return note('no artifacts');
      print(formatArtifacts(list));
    });

  artifacts
    .command('get <run> <name>')
    .description('download an artifact (to ./<name>, or -o FILE, or -o - for stdout)')
    .option('-o, --output <file>', 'where to write it: a file, a folder, or - for stdout')
    .option('--progress', PROGRESS)
    .option('--no-progress', 'never show one')
    .action(async (runId: string, name: string, flags: { output?: string; progress?: boolean }, cmd: Command) => {
      // The server refuses names with path separators; basename() keeps a download in this folder regardless.
      const target = await downloadTarget(flags.output, basename(name));
      const response = await clientFor(cmd).fetchArtifact(runId, name);
      await saveDownload(response, target, `downloading ${name}`, flags.progress);
      if (target !== '-') process.stderr.write(`runtrail: wrote ${target}\n`);
    });

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
    .action(
      async (
        runId: string,
        file: string,
        flags: { name?: string; contentType?: string; metadata?: string; replace?: boolean; json?: boolean; progress?: boolean },
        cmd: Command,
      ) => {
        let metadata: unknown;
        if (flags.metadata !== undefined) {
          try {
            metadata = JSON.parse(flags.metadata);
          } catch (err) {
            throw new RuntrailError('invalid_request', `--metadata is not JSON: ${(err as Error).message}`);
          }
        }
        const upload = await fileToUpload(resolve(file), 'uploading', flags.progress);
        const artifact = await upload.progress.until(
          clientFor(cmd).putArtifact(runId, flags.name ?? basename(file), upload.content, {
            size: upload.size,
            ...(flags.contentType ? { contentType: flags.contentType } : {}),
            ...(metadata === undefined ? {} : { metadata }),
            ...(flags.replace ? { replace: true } : {}),
          }),
          'nothing was stored; try again',
          (sentWhole) =>
            sentWhole ? `the file was sent whole, so the server may still store it (\`runtrail artifacts ls ${runId}\` shows whether it did)` : 'nothing was stored',
        );
        if (flags.json) return printJson(artifact);
        print(formatArtifacts([artifact]));
      },
    );
}

function formatArtifacts(list: Artifact[]): string {
  return table(
    ['#', 'NAME', 'TYPE', 'BYTES', 'SHA256'],
    list.map((a) => [String(a.ordinal), a.name, a.contentType, String(a.size), a.sha256.slice(0, 12)]),
  );
}
