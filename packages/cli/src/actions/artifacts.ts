import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { RuntrailError, type Artifact } from '@runtrail/protocol';
import { clientFor } from '../client.js';
import { note, print, printJson, table } from '../output.js';
import { downloadTarget, fileToUpload, saveDownload } from '../transfer.js';

export interface PutFlags {
  name?: string;
  contentType?: string;
  metadata?: string;
  replace?: boolean;
  json?: boolean;
  progress?: boolean;
}

/** `runtrail artifacts ls RUN`. */
export async function listArtifacts(runId: string, flags: { json?: boolean }, cmd: Command): Promise<void> {
  const list = await clientFor(cmd).listArtifacts(runId);
  if (flags.json) return printJson({ artifacts: list });
  if (list.length === 0) return note('no artifacts');
  print(formatArtifacts(list));
}

/** `runtrail artifacts get RUN NAME`. */
export async function getArtifact(runId: string, name: string, flags: { output?: string; progress?: boolean }, cmd: Command): Promise<void> {
  // The server refuses names with path separators; basename() keeps a download in this folder regardless.
  const target = await downloadTarget(flags.output, basename(name));
  const response = await clientFor(cmd).fetchArtifact(runId, name);
  await saveDownload(response, target, `downloading ${name}`, flags.progress);
  if (target !== '-') process.stderr.write(`runtrail: wrote ${target}\n`);
}

/** `runtrail artifacts put RUN FILE`. */
export async function putArtifact(runId: string, file: string, flags: PutFlags, cmd: Command): Promise<void> {
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
}

function formatArtifacts(list: Artifact[]): string {
  return table(
    ['#', 'NAME', 'TYPE', 'BYTES', 'SHA256'],
    list.map((a) => [String(a.ordinal), a.name, a.contentType, String(a.size), a.sha256.slice(0, 12)]),
  );
}
