import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { OUTPUT_LOG_ARTIFACT, RANGE_HEADER, RuntrailError, buildPath, type Run } from '@runtrail/protocol';
import { contentDisposition, parseRange } from '../artifacts/artifact-routes.js';
import { serve } from '../http/route-table.js';
import type { RunService } from './run-service.js';

export interface OutputLogOptions {
  /** The folder this server's runs write their output logs to (`<dataDir>/logs`). */
  logDir: string;
  /** This server's node name, for "this server does not have it". */
  node: string;
}

/** The file a run's output log has in `logDir` (the executor and an embedded `runtrail exec` write it there). */
export function outputLogPath(logDir: string, runId: string): string | null {
  // Ids are minted by a server, but an imported run keeps the id its archive
  // names: only a plain file name may become a path.
  if (!/^[\w.-]+$/.test(runId) || runId.startsWith('.')) return null;
  return join(logDir, `${runId}.log`);
}

/**
 * `GET /runs/:id/log`: the run's whole output log, streamed from this
 * server's log folder and only from there (an `output.log` link names a
 * path a producer chose; the server never reads a path from event data).
 * Range requests resume a download or read the end of a long log; the
 * file may still grow, so each answer covers the bytes there were when it
 * was asked for.
 */
export function registerOutputLogRoute(app: FastifyInstance, runs: RunService, options: OutputLogOptions): void {
  serve(app, 'runLog', async ({ params, request, reply }) => {
    const run = await runs.get(params.id!);
    const path = outputLogPath(options.logDir, run.id);
    const size = path === null ? null : await fileSize(path);
    if (path === null || size === null) {
      // A runner without this server's disk (`runtrail exec --server`) stores the whole log as the run's artifact when its command ends.
      const stored = run.snapshot.artifacts.some((a) => a.name === OUTPUT_LOG_ARTIFACT && a.ordinal !== null);
      if (stored) return reply.redirect(buildPath('getArtifact', { id: run.id, name: OUTPUT_LOG_ARTIFACT }), 307);
      throw whereTheOutputWent(run, options.node, path);
    }
    void reply
      .header('content-type', 'text/plain; charset=utf-8')
      .header('accept-ranges', 'bytes')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-disposition', contentDisposition('attachment', `${run.name}-${run.id}.log`.replace(/[/\\]/g, '_')));
    const rangeHeader = request.headers[RANGE_HEADER];
    const range = parseRange(Array.isArray(rangeHeader) ? undefined : rangeHeader, size);
    if (range === 'unsatisfiable') {
      void reply.header('content-range', `bytes */${size}`);
      throw new RuntrailError('range_not_satisfiable', `the output log has ${size} bytes; ask for a range inside bytes=0-${Math.max(0, size - 1)}`, {
        size,
      });
    }
    if (size === 0) return reply.header('content-length', 0).send('');
    if (range) {
      void reply
        .status(206)
        .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
        .header('content-length', range.end - range.start + 1);
      return reply.send(createReadStream(path, range));
    }
    // Bounded to the size just read: a running command keeps appending.
    return reply.header('content-length', size).send(createReadStream(path, { start: 0, end: size - 1 }));
  });
}

async function fileSize(path: string): Promise<number | null> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The 404 of a run whose log this server lacks, saying where its output is instead. */
function whereTheOutputWent(run: Run, node: string, ownPath: string | null): RuntrailError {
  const link = run.snapshot.artifacts.find((a) => a.name === OUTPUT_LOG_ARTIFACT && a.uri?.startsWith('file:'));
  const exec = run.snapshot.meta.exec as { host?: unknown } | undefined;
  const host = typeof exec?.host === 'string' ? exec.host : null;
  if (link?.uri) {
    let file: string;
    try {
      file = fileURLToPath(link.uri);
    } catch (err) {
      // Not a local file URL after all (file://otherhost/…): show it as it was given.
      void err;
      file = link.uri;
    }
    if (file === ownPath) {
      return new RuntrailError(
        'log_not_found',
        `the output log of run ${run.id} (${file}) has not been written yet, or was removed; what it printed is also in its log events.`,
        { runId: run.id, file, host },
      );
    }
    const where =
      host === null ? 'on the host that ran it' : host === hostname() ? `on this host (${host}), outside this server's log folder` : `on another host, ${host}`;
    return new RuntrailError(
      'log_not_found',
      `the output of run ${run.id} went to the log file ${file} ${where}; this server (node ${node}) has no copy of it. What it printed is also in its log events.`,
      { runId: run.id, file, host },
    );
  }
  return new RuntrailError(
    'log_not_found',
    `run ${run.id} has no output log file; what it printed is in its log events (${buildPath('readEvents', { id: run.id })})`,
    { runId: run.id },
  );
}
