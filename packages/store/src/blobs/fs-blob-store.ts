import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, readdirSync, rmSync, statSync } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { once } from 'node:events';
import { RuntrailError } from '@runtrail/protocol';
import { makeDirectory } from '../make-directory.js';
import { isSha256Hex, type BlobStore, type StagedBlob } from './blob-store.js';

const HEAD_BYTES = 4096;
/** Retry-After given with a 503 for an artifacts folder that cannot take an upload. */
const RETRY_AFTER_MS = 1000;
/** Staged files older than this at start-up were left by a crash mid-upload. */
const STALE_STAGING_MS = 10 * 60_000;
/** Files the readiness probe writes and removes at once, in the folder itself. */
const PROBE_PREFIX = '.readiness-probe-';

/**
 * Content-addressed files in a directory: `<dir>/sha256/<2 hex>/<64 hex>`,
 * uploads in progress in `<dir>/staging/`. A staged file is renamed into
 * place only once complete (rename is atomic on one file system), so a
 * crash mid-upload leaves at most a staging file, never a visible blob.
 */
export class FsBlobStore implements BlobStore {
  readonly kind = 'fs';
  readonly dir: string;
  /**
   * One name per process: unique, since nodes on a shared database share this folder, and
   * the same at every probe, since the error names the file and a reason that changes is
   * logged as a new outage. One left by a crash mid-probe is removed at the next start.
   */
  private readonly probeName = `${PROBE_PREFIX}${randomUUID()}`;

  constructor(options: { dir: string }) {
    this.dir = options.dir;
    this.removeStaleStaging();
  }

  /**
   * Writes and removes a small file in the folder, so that a read-only
   * folder, one without permission or a full disk is found as an upload
   * would find it. A byte, not an empty file: an empty file takes no space
   * and is created on a full disk. Beside `staging/`, not in it: what is in
   * `staging/` is an upload in progress, to the crash clean-up and to anyone
   * looking. (Some setups mount the artifacts folder; none puts `staging/`
   * on another file system, since commit renames from there.)
   */
  async probe(): Promise<void> {
    const path = join(this.dir, this.probeName);
    try {
      // Made again if it was deleted, as the next upload would.
      makeDirectory(this.dir);
      await writeFile(path, 'x');
    } catch (err) {
      throw this.fault(err);
    } finally {
      // rm looks the file up first: on a read-only folder that is ENOENT (forced), not EROFS.
      await rm(path, { force: true });
    }
  }

  async stage(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: { maxBytes: number }): Promise<StagedBlob> {
    const stagingDir = join(this.dir, 'staging');
    try {
      makeDirectory(stagingDir);
    } catch (err) {
      throw this.fault(err);
    }
    const path = join(stagingDir, randomUUID());
    const out = createWriteStream(path, { flags: 'wx' });
    // A write still in flight when an upload is refused fails on the destroyed
    // stream; `once` below reports write errors that matter, this keeps the
    // late ones from becoming uncaught exceptions.
    let writeError: Error | null = null;
    out.on('error', (err) => (writeError ??= err));
    const hash = createHash('sha256');
    const headChunks: Buffer[] = [];
    let headSize = 0;
    let size = 0;
    try {
      await once(out, 'open');
      for await (const piece of source) {
        const chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        size += chunk.length;
        if (size > options.maxBytes) {
          throw new RuntrailError('payload_too_large', `the content is larger than the limit of ${options.maxBytes} bytes`, {
            limitBytes: options.maxBytes,
          });
        }
        hash.update(chunk);
        if (headSize < HEAD_BYTES) {
          headChunks.push(chunk.subarray(0, HEAD_BYTES - headSize));
          headSize += Math.min(chunk.length, HEAD_BYTES - headSize);
        }
        // Backpressure: never hold more than the stream's buffer in memory.
        if (!out.write(chunk)) await once(out, 'drain');
      }
      out.end();
      await once(out, 'finish');
      if (writeError) throw writeError;
    } catch (err) {
      if (!out.closed) {
        // Not events.once: it would reject on the late write error the listener above absorbs.
        const closed = new Promise<void>((resolve) => out.once('close', () => resolve()));
        out.destroy();
        await closed;
      }
      await rm(path, { force: true });
      throw this.fault(err);
    }
    const sha256 = hash.digest('hex');
    let settled = false;
    return {
      sha256,
      size,
      head: Buffer.concat(headChunks),
      commit: async () => {
        if (settled) return;
        settled = true;
        const final = this.pathOf(sha256);
        try {
          makeDirectory(join(final, '..'));
          await rename(path, final);
        } catch (err) {
          throw this.fault(err);
        }
      },
      discard: async () => {
        if (settled) return;
        settled = true;
        await rm(path, { force: true });
      },
    };
  }

  async open(sha256: string, range?: { start: number; end: number }): Promise<Readable> {
    const stream = createReadStream(this.pathOf(sha256), range ? { start: range.start, end: range.end } : {});
    // Surface a missing file here, not as an error event mid-response.
    await once(stream, 'open');
    return stream;
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await stat(this.pathOf(sha256));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async delete(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  /**
   * The folder's state, not a bug: a full disk, a folder that cannot be
   * written. `unavailable` (503 with Retry-After), naming the folder, so an
   * uploader retries once it is fixed and the log says once what to fix;
   * a 500 left the operator to guess and was logged at every upload.
   */
  private fault(err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (typeof code !== 'string') return err;
    const why = (reason: string, message: string) =>
      new RuntrailError('unavailable', `the artifacts folder ${this.dir} ${message}`, { reason, retryAfterMs: RETRY_AFTER_MS });
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      return new RuntrailError('unavailable', `the data dir's disk is full (${code}) at ${this.dir}: artifact uploads are refused until space is freed`, {
        reason: 'artifacts_disk_full',
        retryAfterMs: RETRY_AFTER_MS,
      });
    }
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
      return why('artifacts_read_only', `cannot be written (${code}: ${(err as Error).message}); uploads are refused until it can`);
    }
    if (code === 'EIO') return why('artifacts_io_error', `had an I/O error (${code}): ${(err as Error).message}`);
    return err;
  }

  private pathOf(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new RuntrailError('invalid_request', `not a sha256: ${JSON.stringify(sha256.slice(0, 80))}`);
    return join(this.dir, 'sha256', sha256.slice(0, 2), sha256);
  }

  private removeStaleStaging(): void {
    // A probe's file is written and removed within one check: one that is older was left by a crash.
    this.removeStale(this.dir, (name) => name.startsWith(PROBE_PREFIX));
    this.removeStale(join(this.dir, 'staging'), () => true);
  }

  private removeStale(dir: string, matches: (name: string) => boolean): void {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // Recent ones may belong to another live process sharing the directory.
    const cutoff = Date.now() - STALE_STAGING_MS;
    for (const name of names.filter(matches)) {
      const path = join(dir, name);
      if (statSync(path).mtimeMs < cutoff) rmSync(path, { force: true });
    }
  }
}
