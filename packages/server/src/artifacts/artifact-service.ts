import type { Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';
import {
  ContentType,
  RuntrailError,
  isTerminalStatus,
  parseOrThrow,
  requireArtifactName,
  type Artifact,
  type Run,
  type RunEvent,
} from '@runtrail/protocol';
import type { BlobStore, RunBundle } from '@runtrail/store';
import type { RunService } from '../runs/run-service.js';
import type { PayloadLimits } from '../security/index.js';
import type { UnreadAnswerBytes } from '../security/answer-budget.js';
import { KeyedLock } from './keyed-lock.js';
import { estimateArchiveBytes, eventLineBytes, exportFamily, exportRun as exportRunArchive, readArchive, type ExportedRun } from './archive.js';
import { normalizeContentType, sniffContentType } from './content-type.js';

export interface ArtifactLimits {
  maxArtifactBytes: number;
  maxRunArtifactBytes: number;
  /** What an import's run and events must fit, as a create's and an append's do. */
  payload?: PayloadLimits;
  /** Most runs one family archive may hold (absent: 10 000). */
  maxImportRuns?: number;
  /** Most bytes one archive may hold, a single run's or a family's (absent: 16 GiB). */
  maxImportBytes?: number;
  /** Most bytes of events an export holds from one read of the log, one event at least (readPageBytes; absent: 8 MiB). */
  readPageBytes?: number;
}

const DEFAULT_MAX_IMPORT_RUNS = 10_000;
const DEFAULT_MAX_IMPORT_BYTES = 16 * 1024 ** 3;
const DEFAULT_READ_PAGE_BYTES = 8 * 1024 * 1024;
/** How many events an export reads ahead to estimate the size of all of them. */
const EVENTS_SAMPLED = 200;

export interface PutArtifactOptions {
  /** The upload's Content-Type; sniffed from the content and name when absent. */
  contentType?: string | undefined;
  metadata?: unknown;
  replace?: boolean;
}

export interface PutOutcome {
  artifact: Artifact;
  outcome: 'created' | 'replaced' | 'unchanged';
}

/**
 * Artifacts of runs: records in the RunStore, content in the BlobStore.
 * A put streams the body into staging (hashing and counting, refusing past
 * the limits), commits the blob under its hash, then writes the record and
 * the `artifact` event in one store transaction; whatever fails on the way
 * leaves no visible artifact and no orphan blob.
 */
export class ArtifactService {
  readonly blobs: BlobStore;
  private readonly runs: RunService;
  private readonly limits: ArtifactLimits;
  private readonly readPageBytes: number;
  private readonly log: FastifyBaseLogger;
  private readonly locks = new KeyedLock();

  constructor(options: { runs: RunService; blobs: BlobStore; limits: ArtifactLimits; log: FastifyBaseLogger }) {
    this.runs = options.runs;
    this.blobs = options.blobs;
    this.limits = options.limits;
    this.readPageBytes = options.limits.readPageBytes ?? DEFAULT_READ_PAGE_BYTES;
    this.log = options.log;
    this.runs.onDeleted((run, artifacts) => this.release(artifacts.map((a) => a.sha256), run.id));
  }

  /**
   * Checks that need no content, so a refused upload is refused before its
   * body is read: the name, the run (exists, running), a declared size.
   * Returns the most bytes this upload may have.
   */
  async admit(runId: string, name: string, declaredSize?: number): Promise<number> {
    requireArtifactName(name);
    const run = await this.runs.get(runId);
    const existing = await this.runs.listArtifacts(runId);
    const same = existing.find((a) => a.name === name);
    if (isTerminalStatus(run.status) && !same) {
      throw new RuntrailError('run_already_terminal', `run ${runId} already ended ${run.status}; artifacts are stored while a run is running`, {
        status: run.status,
      });
    }
    const held = existing.reduce((sum, a) => sum + a.size, 0) - (same?.size ?? 0);
    const maxBytes = Math.min(this.limits.maxArtifactBytes, this.limits.maxRunArtifactBytes - held);
    if (declaredSize !== undefined && declaredSize > maxBytes) throw tooLarge(runId, declaredSize, maxBytes, this.limits);
    return maxBytes;
  }

  async put(runId: string, name: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutArtifactOptions = {}, maxBytes?: number): Promise<PutOutcome> {
    const limit = maxBytes ?? (await this.admit(runId, name));
    const declaredType = options.contentType === undefined ? undefined : parseOrThrow(ContentType, options.contentType, 'content-type');
    let staged;
    try {
      staged = await this.blobs.stage(body, { maxBytes: limit });
    } catch (err) {
      if (RuntrailError.isCode(err, 'payload_too_large')) throw tooLarge(runId, undefined, limit, this.limits);
      throw err;
    }
    const contentType = normalizeContentType(declaredType ?? sniffContentType(name, staged.head));
    const sha256 = staged.sha256;
    const result = await this.locks.with(sha256, async () => {
      try {
        await staged.commit();
        return await this.runs.putArtifact({
          runId,
          name,
          contentType,
          size: staged.size,
          sha256,
          metadata: options.metadata ?? null,
          now: this.runs.now(),
          replace: options.replace === true,
          maxRunBytes: this.limits.maxRunArtifactBytes,
        });
      } catch (err) {
        await staged.discard();
        // The blob may have been committed for a record that was then refused.
        await this.releaseLocked(sha256, runId);
        throw err;
      }
    });
    if (result.displaced) await this.release([result.displaced], runId);
    this.log.info({ runId, artifact: name, outcome: result.outcome, size: staged.size, sha256 }, 'artifact stored');
    return { artifact: result.artifact, outcome: result.outcome };
  }

  list(runId: string): Promise<Artifact[]> {
    return this.runs.listArtifacts(runId);
  }

  async get(runId: string, name: string): Promise<Artifact> {
    const artifact = await this.runs.getArtifact(runId, name);
    if (artifact) return artifact;
    await this.runs.get(runId);
    throw new RuntrailError('artifact_not_found', `run ${runId} has no artifact named ${JSON.stringify(name)}`, { runId, name });
  }

  /**
   * The content of an artifact, whole or an inclusive byte range. Content
   * the record names but this node's blob store lacks (nodes on one
   * database each with their own artifacts folder, a data dir migrated
   * without its artifacts folder) is a 503 naming the artifact, not a 500.
   */
  async open(artifact: Artifact, range?: { start: number; end: number }): Promise<Readable> {
    try {
      return await this.blobs.open(artifact.sha256, range);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw this.contentMissing(artifact);
      throw err;
    }
  }

  /** Refuse, before anything is sent, to serve artifacts whose content is not in this node's blob store. */
  async checkContent(artifacts: Artifact[]): Promise<void> {
    for (const a of artifacts) {
      if (!(await this.blobs.has(a.sha256))) throw this.contentMissing(a);
    }
  }

  private contentMissing(a: Artifact): RuntrailError {
    const where = 'dir' in this.blobs ? ` (${String((this.blobs as { dir: unknown }).dir)})` : '';
    this.log.warn(
      { runId: a.runId, artifact: a.name, sha256: a.sha256 },
      `the content of artifact ${JSON.stringify(a.name)} of run ${a.runId} is not in this node's artifact store${where}; ` +
        'nodes that share a database must share one artifactsDir, and a migrated data dir keeps its content in <dataDir>/artifacts',
    );
    return new RuntrailError(
      'unavailable',
      `the content of artifact ${JSON.stringify(a.name)} (sha256 ${a.sha256.slice(0, 12)}…) is not in this node's artifact store; ` +
        "the server's log says where it looked",
      { runId: a.runId, name: a.name, sha256: a.sha256 },
    );
  }

  /**
   * Load an exported archive (see archive.ts): the content is committed,
   * then the runs (one, or a whole family parents first), their events and
   * records in one store transaction; if that is refused (an id exists),
   * the content no record needs is removed. Answers the runs, the one the
   * archive was exported from first, and whether they were imported now:
   * an archive whose every run is already here as it holds it (the same id,
   * name, parent, status, times and last seq: an ended run does not change)
   * is the client's retry after an answer it lost, and gets those runs back
   * (`imported: false`) instead of run_already_exists.
   */
  async importArchive(body: AsyncIterable<Uint8Array>): Promise<{ runs: Run[]; imported: boolean }> {
    const archive = await readArchive(this, body, {
      maxBlobBytes: this.limits.maxArtifactBytes,
      limits: this.limits.payload,
      now: this.runs.now,
      runExists: async (id) => (await this.runs.find(id)) !== null,
      maxRuns: this.limits.maxImportRuns ?? DEFAULT_MAX_IMPORT_RUNS,
      maxBytes: this.limits.maxImportBytes ?? DEFAULT_MAX_IMPORT_BYTES,
    });
    const shas = [...archive.staged.keys()];
    for (const [sha256, blob] of archive.staged) await this.locks.with(sha256, () => blob.commit());
    const root = archive.runs[0]!.run;
    try {
      const runs = archive.family ? await this.runs.importRuns(archive.runs) : [await this.runs.importRun(archive.runs[0]!)];
      const events = archive.runs.reduce((sum, b) => sum + b.events.length, 0);
      const artifacts = archive.runs.reduce((sum, b) => sum + b.artifacts.length, 0);
      this.log.info({ runId: root.id, runs: runs.length, events, artifacts }, archive.family ? 'family imported' : 'run imported');
      // The run the archive was exported from, first: parents-first order puts the top run first, and that is it.
      return { runs, imported: true };
    } catch (err) {
      await this.release(shas, root.id);
      if (RuntrailError.isCode(err, 'run_already_exists')) {
        const here = await Promise.all(archive.runs.map(({ run }) => this.runs.find(run.id)));
        const differs = await this.firstDifference(archive.runs, here);
        if (differs === null && here.every((r) => r !== null)) {
          this.log.info({ runId: root.id, runs: here.length }, 'import repeated: every run of the archive is already here as it holds it');
          return { runs: here as Run[], imported: false };
        }
        if (differs !== null) throw otherContent(err, differs);
      }
      throw err;
    }
  }

  /**
   * The run as one tar archive: record, every event, every artifact
   * (archive.ts); with `family`, every run under it too, refused while any
   * of them has not ended (an import would refuse it). Answers the runs it
   * holds, the run asked for first, and about how many bytes the archive
   * will have (estimateArchiveBytes: for a progress display, not a length).
   */
  async exportRun(
    runId: string,
    options: { family?: boolean; unread?: UnreadAnswerBytes | undefined } = {},
  ): Promise<{ runs: Run[]; archive: Readable; estimatedBytes: number }> {
    const members = options.family ? await this.runs.endedFamily(runId, this.limits.maxImportRuns ?? DEFAULT_MAX_IMPORT_RUNS) : [await this.runs.get(runId)];
    const exported: ExportedRun[] = [];
    for (const member of members) {
      // The one run asked for alone comes with its watchers, which are no part of its record.
      const { observers: _observers, ...record } = member as Run & { observers?: unknown };
      const records = await this.runs.listArtifacts(member.id);
      // Before the 200: once the archive streams, a missing file can only cut it.
      await this.checkContent(records);
      exported.push({ run: record, events: () => this.pages(record), records });
    }
    // The size of the events is estimated from the first of the first run with any: one small read, however large the family.
    const sampled = exported.find((m) => m.run.seq > 0);
    const sample = sampled ? await this.runs.readEventPage(sampled.run.id, 0, EVENTS_SAMPLED, this.readPageBytes) : [];
    const estimatedBytes = estimateArchiveBytes(exported, options.family === true, sample.length > 0 ? eventLineBytes(sample) / sample.length : 0);
    const archive = options.family
      ? exportFamily(this, exported, options.unread)
      : exportRunArchive(this, exported[0]!.run, exported[0]!.events(), exported[0]!.records, options.unread);
    return { runs: exported.map((m) => m.run), archive, estimatedBytes };
  }

  /**
   * The first way a run of the archive that is stored here differs from it:
   * its record (the fields sameEndedRun compares), an artifact record, or an
   * event; null when every stored one is as the archive holds it. The record
   * alone matched an archive whose events file was edited and kept its count
   * (a log line, an error message, an artifact's hash changed), and the
   * caller was told its content was here when it was not. Where it differs
   * goes into the refusal: a bare "already exists" did not tell the user the
   * archive was an edited or newer export. The archive is in memory already,
   * and the stored events are read page by page as an export reads them: no
   * more work than the import it repeats.
   */
  private async firstDifference(bundles: RunBundle[], here: (Run | null)[]): Promise<ContentDifference | null> {
    for (const [i, { run, events, artifacts }] of bundles.entries()) {
      const stored = here[i];
      if (!stored) continue;
      const field = recordDifference(run, stored);
      if (field !== null) return { runId: run.id, what: 'record', field };
      const artifact = artifactDifference(artifacts, await this.runs.listArtifacts(run.id));
      if (artifact !== null) return { runId: run.id, what: 'artifact', artifact };
      let next = 0;
      for await (const page of this.pages(stored)) {
        for (const event of page) {
          if (!sameJson(event, events[next])) return { runId: run.id, what: 'events', seq: event.seq };
          next++;
        }
      }
      // Fewer stored than archived (the records' seq matched, so only a gap in the stored seqs): they differ from the first one missing.
      if (next !== events.length) return { runId: run.id, what: 'events', seq: events[next]!.seq };
    }
    return null;
  }

  /**
   * A run's events page by page, only those its exported record counts, even
   * if the run is still moving. Pages stop at readPageBytes: 5,000 events a
   * page were 5 GB at once for events of 1 MiB.
   */
  private async *pages(run: Run): AsyncIterable<RunEvent[]> {
    for (let after = 0; after < run.seq; ) {
      const page = (await this.runs.readEventPage(run.id, after, 5000, this.readPageBytes)).filter((e) => e.seq <= run.seq);
      if (page.length === 0) return;
      yield page;
      after = page.at(-1)!.seq;
    }
  }

  /** Delete the content of these hashes that no record refers to any more. */
  async release(sha256s: string[], runId: string): Promise<void> {
    for (const sha256 of new Set(sha256s)) await this.locks.with(sha256, () => this.releaseLocked(sha256, runId));
  }

  private async releaseLocked(sha256: string, runId: string): Promise<void> {
    try {
      if (!(await this.runs.blobsInUse([sha256])).has(sha256)) await this.blobs.delete(sha256);
    } catch (err) {
      // An unreferenced blob left behind costs disk, not correctness: log it and carry on.
      this.log.warn({ err, runId, sha256 }, 'could not remove unreferenced artifact content');
    }
  }
}

function tooLarge(runId: string, size: number | undefined, maxBytes: number, limits: ArtifactLimits): RuntrailError {
  const which =
    maxBytes < limits.maxArtifactBytes
      ? `run ${runId} may hold ${limits.maxRunArtifactBytes} bytes of artifacts and has room for ${Math.max(0, maxBytes)} more`
      : `an artifact may have at most ${limits.maxArtifactBytes} bytes`;
  return new RuntrailError('payload_too_large', `${size === undefined ? 'the upload is' : `the upload (${size} bytes) is`} too large: ${which}; nothing was stored`, {
    limitBytes: Math.max(0, maxBytes),
    maxArtifactBytes: limits.maxArtifactBytes,
    maxRunArtifactBytes: limits.maxRunArtifactBytes,
  });
}

/**
 * Whether two values are the same as JSON, whatever their key order: the
 * archive's parsed data holds user-named keys in prototype-less objects, the
 * store's in plain ones, and a key whose value is undefined is no key.
 */
function sameJson(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(a) ?? 'null'), JSON.parse(JSON.stringify(b) ?? 'null'));
}

/** Where a run of an archive differs from the run of that id stored here: the details of the refusal. */
type ContentDifference =
  | { runId: string; what: 'record'; field: (typeof ENDED_RUN_FIELDS)[number] }
  | { runId: string; what: 'artifact'; artifact: string }
  | { runId: string; what: 'events'; seq: number };

/** What an import keeps of a run's record and nothing after it ends changes: what a repeated import must match. */
const ENDED_RUN_FIELDS = ['id', 'name', 'parentId', 'status', 'createdAt', 'startedAt', 'finishedAt', 'seq'] as const;

/** The first field in which two records are not the same ended run, or null. */
function recordDifference(archived: Run, stored: Run): (typeof ENDED_RUN_FIELDS)[number] | null {
  return ENDED_RUN_FIELDS.find((field) => archived[field] !== stored[field]) ?? null;
}

/** The name of the first artifact (in name order) whose record differs, or that only one side has; null when none. */
function artifactDifference(archived: Artifact[], stored: Artifact[]): string | null {
  const byName = (list: Artifact[]) => new Map(list.map((a) => [a.name, a]));
  const [a, b] = [byName(archived), byName(stored)];
  const names = [...new Set([...a.keys(), ...b.keys()])].sort();
  return names.find((name) => !a.has(name) || !b.has(name) || !sameJson(a.get(name), b.get(name))) ?? null;
}

/**
 * The refusal of an archive a run of which is here with other content: still
 * run_already_exists (clients act on the code), saying which run, what
 * differs and where, so an edited or newer export reads as one. The stored
 * refusal's details (runId, every taken id of a family) are kept.
 */
function otherContent(taken: RuntrailError, differs: ContentDifference): RuntrailError {
  const where =
    differs.what === 'record'
      ? `its record's ${differs.field} differs`
      : differs.what === 'artifact'
        ? `artifact ${JSON.stringify(differs.artifact)} differs`
        : `its events differ from seq ${differs.seq}`;
  const runIds = (taken.details as { runIds?: string[] } | undefined)?.runIds;
  const others = runIds && runIds.length > 1 ? ` (${runIds.length} runs of the archive exist here: ${runIds.slice(0, 20).join(', ')}${runIds.length > 20 ? ', ...' : ''})` : '';
  return new RuntrailError(
    'run_already_exists',
    `run ${differs.runId} already exists on this server with other content (${where})${others}; delete ${others ? 'them' : 'it'} first to import this archive; nothing was imported`,
    { ...(taken.details as object | undefined), differs },
  );
}
