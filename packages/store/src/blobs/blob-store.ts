import type { Readable } from 'node:stream';

/**
 * Where artifact CONTENT lives, apart from the records (those are in the
 * RunStore). Content is addressed by its sha256, so identical content is
 * stored once whatever run or name it is stored under. Adapters: a
 * directory (`FsBlobStore`, the data dir or a configured one); an object
 * store would implement the same four calls.
 *
 * Writing is two steps so that a record never points at missing content and
 * half-written content is never visible: `stage` streams the bytes into a
 * private staging area while hashing and counting them, then the caller
 * either `commit`s them under their hash or `discard`s them.
 */
export interface BlobStore {
  readonly kind: string;
  /**
   * Stream `source` into staging. Rejects with `payload_too_large` once more
   * than `maxBytes` arrived, and with the source's error if it fails (a
   * dropped upload); either way nothing is left behind.
   */
  stage(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: { maxBytes: number }): Promise<StagedBlob>;
  /** Stored content, whole or the inclusive byte range [start, end]; rejects with ENOENT-style errors if absent. */
  open(sha256: string, range?: { start: number; end: number }): Promise<Readable>;
  has(sha256: string): Promise<boolean>;
  /** Remove stored content (callers make sure no record refers to it). */
  delete(sha256: string): Promise<void>;
  /**
   * Resolves when an upload could be stored now, rejects as `stage` would
   * (`unavailable`, naming the folder and why) when it could not: a cheap
   * check for readiness, so that a node whose uploads all fail is taken out
   * of a load balancer's rotation instead of answering ready.
   */
  probe(): Promise<void>;
}

export interface StagedBlob {
  readonly sha256: string;
  readonly size: number;
  /** The first bytes (up to 4 KiB), for sniffing the content type. */
  readonly head: Buffer;
  /** Make the content readable under its sha256 (idempotent: same hash, same bytes). */
  commit(): Promise<void>;
  /** Drop the staged bytes. */
  discard(): Promise<void>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Every path a blob store builds comes from a hash that passed this check, so none can point outside it. */
export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}
