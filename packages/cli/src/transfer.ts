import { createHash } from 'node:crypto';
import { createReadStream, existsSync, rmSync } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { EXPORT_ESTIMATED_BYTES_HEADER, RuntrailError } from '@runtrail/protocol';
import { EXIT_INTERRUPTED } from './output.js';

/** How often a progress line is redrawn; a transfer done sooner shows none. */
export const REDRAW_MS = 200;
/** How long a transfer may move no byte before its line says so (it looked hung, and users pressed Ctrl-C). */
export const STALL_NOTICE_MS = 5_000;
/** How often a stalled transfer's line is written again when stderr is no terminal (each is a new line). */
const STALL_REPEAT_MS = 15_000;

/**
 * A long upload or download tells its user how far it got: one line on
 * stderr ("runtrail: uploading big.bin: 12.0 MiB of 47.7 MiB (25%)"),
 * redrawn in place on a terminal, or a line per redraw with --progress
 * when stderr is not one. `show` is --progress / --no-progress; unset,
 * the line shows on a terminal only. An `estimated` total (an export's,
 * which has no Content-Length) is said as one ("of about 47.7 MiB") and
 * its percentage stops at 99 until the transfer completes.
 */
export class TransferProgress {
  private done = 0;
  /** Every byte of the source went through (an upload sent whole, its answer still to come). */
  private sentWhole = false;
  private completed = false;
  private drawn = false;
  private lastDraw: number;
  /** When the last byte went through, or the transfer began. */
  private lastByteAt: number;
  /** When the line last said the transfer was stalled (0: never). */
  private stallNotedAt = 0;
  private readonly tty = process.stderr.isTTY === true;
  private readonly show: boolean;

  constructor(
    private readonly what: string,
    private readonly total: number | null,
    show: boolean | undefined,
    private readonly estimated = false,
  ) {
    this.show = show ?? this.tty;
    this.lastDraw = Date.now();
    this.lastByteAt = this.lastDraw;
  }

  /** The bytes of `source`, counted as they pass. */
  async *through(source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    for await (const chunk of source) {
      this.done += chunk.length;
      this.lastByteAt = Date.now();
      if (this.show && Date.now() - this.lastDraw >= REDRAW_MS) this.draw();
      yield chunk;
    }
    this.sentWhole = true;
  }

  /**
   * `transfer`'s outcome, with the line ended as it ends. A connection lost
   * on the way (not an answer from the server) is said as that, with how
   * far it got and what that left (`lost`), rather than as a server that
   * does not answer.
   */
  async until<T>(transfer: Promise<T>, lost: string, interrupted?: (sentWhole: boolean) => string): Promise<T> {
    let completed = false;
    // Ctrl-C: the line ended and what was left said (an upload cut part way is refused whole by the
    // server; one sent whole may still be taken), rather than a bare ^C that leaves the user guessing.
    const onInterrupt = () => {
      this.end(false);
      process.stderr.write(`runtrail: interrupted after ${this.count()}: ${interrupted!(this.sentWhole)}\n`);
      process.exit(EXIT_INTERRUPTED);
    };
    if (interrupted) process.on('SIGINT', onInterrupt);
    // No byte is what a slow link, a busy server or one importing what it was sent looks like: said, not a frozen line.
    const stalls = setInterval(() => this.noteStall(), 1_000);
    stalls.unref();
    try {
      const result = await transfer;
      completed = true;
      return result;
    } catch (err) {
      const reason = connectionFailure(err);
      if (reason === null || reason === 'ECONNREFUSED' || this.done === 0) throw err;
      throw new RuntrailError('unavailable', `the connection was lost after ${this.count()} (${reason}); ${lost}`);
    } finally {
      clearInterval(stalls);
      process.off('SIGINT', onInterrupt);
      this.end(completed);
    }
  }

  /** How far it got, for a message that the transfer stopped. */
  get sofar(): string {
    return this.count();
  }

  /** Ends the line, redrawn at its final count if the transfer completed; on a terminal a transfer quick enough to draw none shows none. */
  end(completed: boolean): void {
    if (!this.show) return;
    this.completed = completed;
    if (completed && (this.drawn || !this.tty)) this.draw();
    if (this.drawn && this.tty) process.stderr.write('\n');
  }

  /** Redraws the line with how long no byte has gone through, once that passes STALL_NOTICE_MS (on no terminal, every STALL_REPEAT_MS). */
  private noteStall(): void {
    const quiet = Date.now() - this.lastByteAt;
    if (!this.show || this.completed || quiet < STALL_NOTICE_MS) return;
    // Once per stall, then every STALL_REPEAT_MS, where each redraw is a line of its own.
    if (!this.tty && this.stallNotedAt > this.lastByteAt && Date.now() - this.stallNotedAt < STALL_REPEAT_MS) return;
    this.stallNotedAt = Date.now();
    const seconds = Math.floor(quiet / 1000);
    this.draw(this.sentWhole ? ` (all sent; waiting ${seconds} s for the server's answer)` : ` (nothing for ${seconds} s)`);
  }

  private draw(note = ''): void {
    this.lastDraw = Date.now();
    this.drawn = true;
    const line = `runtrail: ${this.what}: ${this.count()}${note}`;
    process.stderr.write(this.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }

  private count(): string {
    if (this.total === null) return formatSize(this.done);
    if (!this.estimated) return `${formatSize(this.done)} of ${formatSize(this.total)} (${Math.floor((100 * this.done) / Math.max(1, this.total))}%)`;
    if (this.completed) return `${formatSize(this.done)} (100%)`;
    return `${formatSize(this.done)} of about ${formatSize(this.total)} (${Math.min(99, Math.floor((100 * this.done) / Math.max(1, this.total)))}%)`;
  }
}

/** The reason of a network failure (fetch's TypeError with a cause, a stream's reset), else null. */
function connectionFailure(err: unknown): string | null {
  if (err instanceof RuntrailError || !(err instanceof Error)) return null;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = (err as NodeJS.ErrnoException).code;
  if (cause) return cause.code ?? cause.message ?? err.message;
  if (code) return code;
  return err instanceof TypeError ? err.message : null;
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * A file to upload, with its size (sent as Content-Length, so a server
 * refuses one over its limits at once) and its bytes counted for the
 * progress line; exactly the bytes it had when measured.
 */
export async function fileToUpload(path: string, what: string, show: boolean | undefined): Promise<{ content: AsyncIterable<Uint8Array>; size: number; progress: TransferProgress }> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new RuntrailError('invalid_request', `${path} is not a file`);
    size = info.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new RuntrailError('invalid_request', `no such file: ${path}`);
    throw err;
  }
  const progress = new TransferProgress(`${what} ${basename(path)}`, size, show);
  const content = size === 0 ? [] : createReadStream(path, { end: size - 1 });
  return { content: progress.through(content as AsyncIterable<Uint8Array>), size, progress };
}

/** Stdin to upload, of a size not known until it ends (sent chunked), counted for the progress line. */
export function stdinUpload(show: boolean | undefined): { content: AsyncIterable<Uint8Array>; size: null; progress: TransferProgress } {
  if (process.stdin.isTTY) throw new RuntrailError('invalid_request', 'stdin is a terminal: pipe an archive into it (runtrail export ID -o - | runtrail import -), or name a file');
  const progress = new TransferProgress('importing stdin', null, show);
  return { content: progress.through(process.stdin), size: null, progress };
}

/**
 * Where a download goes: `-` (stdout) as it is; no -o, `defaultName` here;
 * an existing folder (or a path ending in /), `defaultName` in it, as cp
 * does; else the file named.
 */
export async function downloadTarget(output: string | undefined, defaultName: string): Promise<string> {
  if (output === '-') return '-';
  if (output === undefined) return resolve(defaultName);
  if (/[/\\]$/.test(output)) return resolve(output, defaultName);
  const info = await stat(output).catch((err: NodeJS.ErrnoException) => {
    // Not there yet is the usual case (a new file); anything else is said when the file is opened.
    void err;
    return null;
  });
  return info?.isDirectory() ? resolve(output, defaultName) : resolve(output);
}

/**
 * Save a download: `-` streams it to stdout; a file is written beside its
 * target under a temporary name and renamed into place only once complete
 * (and, when the server sent the content's sha256 as its ETag, only if the
 * bytes hash to it), so a cut download never leaves a file that looks whole.
 */
export async function saveDownload(response: Response, target: string, label: string, show: boolean | undefined): Promise<void> {
  const length = sizeHeader(response, 'content-length');
  const estimate = length === null ? sizeHeader(response, EXPORT_ESTIMATED_BYTES_HEADER) : null;
  const progress = new TransferProgress(label, length ?? estimate, show, estimate !== null);
  const body = () => progress.through(Readable.fromWeb(response.body! as WebReadableStream<Uint8Array>));
  if (target === '-') return progress.until(pipeline(body(), process.stdout), 'what was written to stdout is incomplete');
  const expected = /^"([0-9a-f]{64})"$/.exec(response.headers.get('etag') ?? '')?.[1];
  const partial = join(dirname(target), `.${basename(target)}.runtrail-partial`);
  // Opened before a byte is read, so a target that cannot be written is
  // said as that, at once, not as a connection lost part way.
  let file: FileHandle;
  try {
    file = await open(partial, 'w');
  } catch (err) {
    await response.body?.cancel();
    throw new RuntrailError('invalid_request', `cannot write ${target}: ${fileProblem(err as NodeJS.ErrnoException, dirname(target))}; nothing was downloaded`);
  }
  const hash = createHash('sha256');
  // Ctrl-C mid-download: the partial file goes too (exiting skips the cleanup below), so no dot-file is left to find later.
  const onInterrupt = () => {
    progress.end(false);
    rmSync(partial, { force: true });
    process.stderr.write(`runtrail: interrupted after ${progress.sofar}: nothing was written to ${target}\n`);
    process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', onInterrupt);
  try {
    await progress.until(
      pipeline(
        body(),
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            yield chunk;
          }
        },
        file.createWriteStream(),
      ),
      `nothing was written to ${target}; try again`,
    );
    const got = hash.digest('hex');
    if (expected !== undefined && got !== expected) {
      throw new RuntrailError('unavailable', `the download does not hash to the sha256 the server gave (${expected}): it changed on the way; nothing was written to ${target}, try again`);
    }
    await rename(partial, target).catch((err: NodeJS.ErrnoException) => {
      throw new RuntrailError('invalid_request', `cannot write ${target}: ${fileProblem(err, dirname(target))}; nothing was written`);
    });
  } catch (err) {
    await file.close().catch((closeErr: unknown) => void closeErr /* already closed by its stream: nothing to release */);
    await rm(partial, { force: true });
    throw err;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

/** A header holding a positive byte count, else null. */
function sizeHeader(response: Response, name: string): number | null {
  const value = Number(response.headers.get(name));
  return Number.isFinite(value) && value > 0 ? value : null;
}

/** A file error as a user reads it. */
function fileProblem(err: NodeJS.ErrnoException, folder: string): string {
  switch (err.code) {
    case 'ENOENT':
      // /proc and the like exist but hold no new files.
      return existsSync(folder) ? `files cannot be made in ${folder}` : `the folder ${folder} does not exist`;
    case 'ENOTDIR':
      return `${folder} is not a folder`;
    case 'EISDIR':
      return 'it is a folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'the disk is full';
    default:
      return err.code ?? err.message;
  }
}
