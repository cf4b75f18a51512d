import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type tarStream from 'tar-stream';
import { z } from 'zod';
import {
  Artifact,
  CreateRunBody,
  EventInput,
  JsonValue,
  Owner,
  RunId,
  RunSchema,
  invalidRequest,
  isTerminalType,
  labelsAsSent,
  parseOrThrow,
  runIdTime,
  RuntrailError,
  isTerminalStatus,
  terminalStatusOf,
  validateEventData,
  type Run,
  type RunEvent,
} from '@runtrail/protocol';
import type { RunBundle, StagedBlob } from '@runtrail/store';
import type { ArtifactService } from './artifact-service.js';
import { checkEventData, checkRunData, type PayloadLimits } from '../security/index.js';
import type { UnreadAnswerBytes } from '../security/answer-budget.js';

/**
 * A run as one tar archive (`GET /runs/:id/export`, `POST /import`):
 *
 *   runtrail-export.json   {format: "runtrail-run", version: 1, runId}
 *   run.json               the run record
 *   events/000001.ndjson   its events in seq order, at most EVENTS_PER_FILE and EVENTS_FILE_BYTES a file
 *   artifacts.json         its artifact records, in ordinal order
 *   blobs/<sha256>         each distinct content once
 *
 * A run with every run under it (`?family=true`) is version 2:
 *
 *   runtrail-export.json   {format: "runtrail-run", version: 2, runId, runs: [ids, parents before children]}
 *   runs/<id>/run.json, runs/<id>/events/NNNNNN.ndjson, runs/<id>/artifacts.json   each run, as above
 *   blobs/<sha256>         each distinct content of the whole family once
 *
 * A single run is still written as version 1, so a server that reads only
 * version 1 imports it; one of those given a family says it is too old.
 *
 * Written as a stream, as it is read: memory holds one events file or one
 * JSON entry at a time (counted in the client's answer budget until handed
 * to the socket), the socket a piece of it. Read as one too, except that an import holds all of the runs'
 * events until the store writes them in one transaction (bounded by
 * MAX_IMPORT_JSON_BYTES, a single run's as a family's). Never an
 * artifact's content: that is staged to disk.
 */
export const ARCHIVE_FORMAT = 'runtrail-run' as const;
/** The version of a single-run archive. */
export const ARCHIVE_VERSION = 1 as const;
/** The version of a family archive (`runs` in the manifest, each run under runs/<id>/). */
export const FAMILY_ARCHIVE_VERSION = 2 as const;
const EVENTS_PER_FILE = 5000;
/**
 * An events file is closed before it passes this size, however few events
 * it holds: 5000 events of 14 KB each made a file over the 64 MiB an import
 * reads of one entry, so a run exported whole could not be imported.
 */
const EVENTS_FILE_BYTES = 16 * 1024 * 1024;
/** Largest JSON entry an import reads into memory. */
const MAX_JSON_ENTRY_BYTES = 64 * 1024 * 1024;
/**
 * Most bytes of JSON (records and events) an import reads into memory: all
 * of it is held until the store writes the run (or the family) in one
 * transaction, so the sum is bounded, not only each entry. A single run is
 * held whole too: its events cannot go to the store page by page as they
 * are read, since they are checked whole first (seq 1..n, ending with the
 * run's terminal event, artifacts.json and the content after them) and a
 * SQLite transaction cannot stay open across the reads of a request body
 * (other requests' writes on the one connection would land inside it).
 */
export const MAX_IMPORT_JSON_BYTES = 512 * 1024 * 1024;
/** The first bytes of gzip data (RFC 1952): `gzip run.tar` is how archives are usually kept. */
const GZIP_MAGIC = [0x1f, 0x8b] as const;

const Manifest = z.union([
  z.object({ format: z.literal(ARCHIVE_FORMAT), version: z.literal(ARCHIVE_VERSION), runId: RunId }),
  z.object({ format: z.literal(ARCHIVE_FORMAT), version: z.literal(FAMILY_ARCHIVE_VERSION), runId: RunId, runs: z.array(RunId).min(1) }),
]);
type Manifest = z.infer<typeof Manifest>;
/**
 * The run record of an import: what create would accept, with the same
 * schemas (a name, labels, input and owner as a create body's; ids the
 * server mints), so an archive cannot store what the API refuses, e.g. an
 * id that is no run id (it would sort above every run), input nested
 * deeper than the API allows, or control characters where PostgreSQL
 * cannot store them.
 */
const create = CreateRunBody.shape;
const ImportedRun = RunSchema.extend({
  id: RunId,
  name: create.name,
  parentId: RunId.nullable(),
  retryOf: RunId.nullable(),
  input: JsonValue,
  output: JsonValue,
  labels: create.labels.unwrap(),
  owner: Owner.nullable(),
  timeoutMs: create.timeoutMs.unwrap().nullable(),
  stallTimeoutMs: create.stallTimeoutMs.unwrap().nullable(),
});
/** An event of an import: what an append would accept (EventInput), with the seq and ts the log gave it. */
const StoredEvent = EventInput.extend({
  runId: RunId,
  seq: z.number().int().positive(),
  ts: z.number().int().nonnegative(),
});

/** How far a run id's time may be ahead of this server's clock (clocks of two hosts differ a little). */
const MAX_ID_CLOCK_SKEW_MS = 60_000;

/** What an import is checked against besides the archive itself. */
export interface ImportChecks {
  /** Largest artifact content accepted. */
  maxBlobBytes: number;
  /** The size limits an append and a create enforce (absent: the protocol's own bounds only). */
  limits?: PayloadLimits | undefined;
  now: () => number;
  /** Whether a run with this id exists here (an imported run's parent must). */
  runExists: (id: string) => Promise<boolean>;
  /** Most runs one family archive may hold (maxImportRuns). */
  maxRuns: number;
  /** Most bytes one archive may hold, as a tar (maxImportBytes). */
  maxBytes: number;
  /** Most bytes of records and events held in memory until the store writes them (default MAX_IMPORT_JSON_BYTES). */
  maxJsonBytes?: number | undefined;
}

/** One run of an export: its record, its events (read page by page as they are written), its artifact records. */
export interface ExportedRun {
  run: Run;
  events: () => AsyncIterable<RunEvent[]>;
  records: Artifact[];
}

export function exportRun(artifacts: ArtifactService, run: Run, events: AsyncIterable<RunEvent[]>, records: Artifact[], unread?: UnreadAnswerBytes): Readable {
  const { manifest, folder } = layoutOf([{ run }], false);
  return writeArchive(artifacts, manifest, [{ run, events: () => events, records }], folder, unread);
}

/** A run and every run under it (`family`, parents before children, the run first) as one version 2 archive. */
export function exportFamily(artifacts: ArtifactService, family: ExportedRun[], unread?: UnreadAnswerBytes): Readable {
  const { manifest, folder } = layoutOf(family, true);
  return writeArchive(artifacts, manifest, family, folder, unread);
}

/** The manifest of an export and where each run's entries go in it: a single run at the top (version 1), a family's under runs/<id>/ (version 2). */
function layoutOf(members: Array<{ run: Run }>, family: boolean): { manifest: Manifest; folder: (id: string) => string } {
  const runId = members[0]!.run.id;
  return family
    ? { manifest: { format: ARCHIVE_FORMAT, version: FAMILY_ARCHIVE_VERSION, runId, runs: members.map((m) => m.run.id) }, folder: (id) => `runs/${id}/` }
    : { manifest: { format: ARCHIVE_FORMAT, version: ARCHIVE_VERSION, runId }, folder: () => '' };
}

const TAR_BLOCK = 512;
/** A tar entry of `size` bytes: its header block and its content padded to whole blocks (names here fit the header: no extended header). */
const tarEntryBytes = (size: number) => TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
const jsonEntryBytes = (value: unknown) => tarEntryBytes(Buffer.byteLength(`${JSON.stringify(value, null, 2)}\n`));

/**
 * About how many bytes the archive of `members` will have, sent as
 * x-runtrail-export-estimated-bytes for a progress display: exact for the
 * manifest, the run records, the artifact records and the content (each
 * with its tar framing) and the end of the archive; the events, which are
 * read only as they are written, are counted as `bytesPerEvent` each (a
 * sample's average) in files split as writeArchive splits them. Knowing
 * them exactly would mean reading every event twice.
 */
export function estimateArchiveBytes(members: Array<{ run: Run; records: Artifact[] }>, family: boolean, bytesPerEvent: number): number {
  const { manifest } = layoutOf(members, family);
  let bytes = jsonEntryBytes(manifest) + 2 * TAR_BLOCK;
  const blobs = new Set<string>();
  for (const { run, records } of members) {
    bytes += jsonEntryBytes(run) + jsonEntryBytes(records);
    const events = run.seq * bytesPerEvent;
    const files = run.seq === 0 ? 0 : Math.max(Math.ceil(run.seq / EVENTS_PER_FILE), Math.ceil(events / EVENTS_FILE_BYTES));
    // Each file's header, and on average half a block of padding.
    bytes += Math.round(events) + files * (TAR_BLOCK + TAR_BLOCK / 2);
    for (const a of records) {
      if (blobs.has(a.sha256)) continue;
      blobs.add(a.sha256);
      bytes += tarEntryBytes(a.size);
    }
  }
  return bytes;
}

/** The bytes of `events` as lines of an events file: one JSON text and a newline each. */
export function eventLineBytes(events: RunEvent[]): number {
  return events.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e)) + 1, 0);
}

/**
 * The most of an entry handed to the pack at a time. The pack takes a
 * piece only when the answer is read (its buffer and the socket's are
 * small), so a client that never reads leaves one queued, not an events
 * file: 200 exports that never read held 3.1 GiB on their sockets before.
 */
const PIECE_BYTES = 64 * 1024;

let tarModule: typeof tarStream | undefined;
/**
 * tar-stream, required on the first export or import instead of at start:
 * most servers never archive, and loading it (with streamx) took about 25 ms
 * of every start.
 */
function tar(): typeof tarStream {
  tarModule ??= createRequire(import.meta.url)('tar-stream') as typeof tarStream;
  return tarModule;
}

function writeArchive(
  artifacts: ArtifactService,
  manifest: Manifest,
  members: ExportedRun[],
  folder: (id: string) => string,
  unread: UnreadAnswerBytes | undefined,
): Readable {
  const pack = tar().pack();
  const json = (name: string, value: unknown) => {
    const content = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
    unread?.take(content.length);
    return addPieces(pack, name, [content], unread);
  };
  void (async () => {
    await json('runtrail-export.json', manifest);
    for (const { run, events, records } of members) {
      const prefix = folder(run.id);
      await json(`${prefix}run.json`, run);
      let file = 0;
      let lines: Buffer[] = [];
      let bytes = 0;
      const flush = async () => {
        if (lines.length === 0) return;
        const written = lines;
        lines = [];
        bytes = 0;
        await addPieces(pack, `${prefix}events/${String(++file).padStart(6, '0')}.ndjson`, written, unread);
      };
      for await (const page of events()) {
        for (const e of page) {
          // As eventLineBytes counts it.
          const line = Buffer.from(`${JSON.stringify(e)}\n`);
          if (lines.length >= EVENTS_PER_FILE || (lines.length > 0 && bytes + line.length > EVENTS_FILE_BYTES)) await flush();
          // Held until the file is whole (its size goes in its header first), so counted in its client's answer budget.
          unread?.take(line.length);
          lines.push(line);
          bytes += line.length;
        }
      }
      await flush();
      await json(`${prefix}artifacts.json`, records);
    }
    const written = new Set<string>();
    for (const a of members.flatMap((m) => m.records)) {
      if (written.has(a.sha256)) continue;
      written.add(a.sha256);
      // Opened before its entry exists: an entry left unwritten when the pack is destroyed
      // emits an error no one listens to, which would take the whole server down.
      const content = await artifacts.open(a);
      const entry = pack.entry({ name: `blobs/${a.sha256}`, size: a.size });
      await pipeline(content, entry);
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))));
  // Bytes, not objects: in object mode it read 16 of the pack's chunks ahead of the socket.
  return Readable.from(pack, { objectMode: false, highWaterMark: PIECE_BYTES });
}

/**
 * An entry of these buffers, in pieces of at most PIECE_BYTES, each made
 * only when the pack takes the one before; each buffer is let go (and its
 * bytes released from `unread`) once it has been handed on.
 */
async function addPieces(pack: tarStream.Pack, name: string, buffers: Buffer[], unread: UnreadAnswerBytes | undefined): Promise<void> {
  const size = buffers.reduce((sum, b) => sum + b.length, 0);
  function* pieces(): Generator<Buffer> {
    let i = 0;
    while (i < buffers.length) {
      // Small lines are joined (many writes of a few bytes would cost more than the bytes); a large one is cut.
      const group: Buffer[] = [];
      let grouped = 0;
      while (i < buffers.length && grouped + buffers[i]!.length <= PIECE_BYTES) {
        grouped += buffers[i]!.length;
        group.push(buffers[i]!);
        buffers[i++] = EMPTY;
      }
      if (group.length > 0) {
        yield group.length === 1 ? group[0]! : Buffer.concat(group, grouped);
        unread?.release(grouped);
        continue;
      }
      const large = buffers[i]!;
      buffers[i++] = EMPTY;
      for (let at = 0; at < large.length; at += PIECE_BYTES) yield large.subarray(at, at + PIECE_BYTES);
      unread?.release(large.length);
    }
  }
  await pipeline(Readable.from(pieces(), { objectMode: false, highWaterMark: PIECE_BYTES }), pack.entry({ name, size }));
}

const EMPTY = Buffer.alloc(0);

export interface ImportedArchive {
  /** The runs, parents before their children: one for a single-run archive. */
  runs: RunBundle[];
  /** Whether the archive is a family's (version 2), even of one run. */
  family: boolean;
  /** Content read from the archive, staged, not yet committed. */
  staged: Map<string, StagedBlob>;
}

/**
 * Read an archive into validated runs. Anything unexpected (an entry that
 * is not one of the names above, a path that would leave the archive, a
 * truncated or malformed file, content whose hash is not its name, events
 * that do not fold into their run, a run of a family whose parent is
 * nowhere) is `invalid_request`, an archive over this server's limits
 * `payload_too_large`, and the content staged so far is discarded:
 * nothing changes.
 */
export async function readArchive(artifacts: ArtifactService, body: AsyncIterable<Uint8Array>, checks: ImportChecks): Promise<ImportedArchive> {
  const staged = new Map<string, StagedBlob>();
  try {
    return await readEntries(artifacts, body, checks, staged);
  } catch (err) {
    for (const blob of staged.values()) await blob.discard();
    if (err instanceof RuntrailError) throw err;
    throw new RuntrailError('invalid_request', `the archive is truncated or malformed: ${(err as Error).message}; nothing was imported`);
  }
}

/** What the archive holds of one run, as its entries are read. */
interface RunParts {
  run: Run | null;
  records: Artifact[] | null;
  eventFiles: Map<number, RunEvent[]>;
}

/** run.json, artifacts.json or events/NNNNNN.ndjson, at the top (version 1) or under runs/<id>/ (version 2). */
const RUN_ENTRY = /^(?:runs\/([^/]{1,100})\/)?(run\.json|artifacts\.json|events\/(\d{6})\.ndjson)$/;

async function readEntries(
  artifacts: ArtifactService,
  body: AsyncIterable<Uint8Array>,
  checks: ImportChecks,
  staged: Map<string, StagedBlob>,
): Promise<ImportedArchive> {
  const maxBlobBytes = checks.maxBlobBytes;
  const extract = tar().extract();
  const { gzipped, bytes } = await sniffGzip(body);
  const feeding = gzipped ? pipeline(Readable.from(bytes), createGunzip(), extract) : pipeline(Readable.from(bytes), extract);
  // Its failure (a truncated archive) also ends the loop below, which reports it;
  // this handler only keeps it from counting as unhandled before `await feeding`.
  feeding.catch(() => undefined);
  let manifest: Manifest | null = null;
  // Keyed by run id; '' for the one run of a version 1 archive.
  const parts = new Map<string, RunParts>();
  const seen = new Set<string>();
  // Known to be a family's from its manifest or its first runs/ entry.
  let family = false;
  let archiveBytes = 0;
  let jsonBytes = 0;
  const maxJsonBytes = checks.maxJsonBytes ?? MAX_IMPORT_JSON_BYTES;
  // Both bounds hold for a single run as for a family: a single run's events are held in memory until its one transaction too.
  const checkBytes = () => {
    if (archiveBytes > checks.maxBytes) throw tooLarge(`the archive holds more than ${checks.maxBytes} bytes, the most this server imports in one archive (maxImportBytes)`);
  };
  const partsOf = (key: string): RunParts => {
    let found = parts.get(key);
    if (!found) {
      if (key !== '' && parts.size >= checks.maxRuns) throw tooManyRuns(checks.maxRuns);
      found = { run: null, records: null, eventFiles: new Map() };
      parts.set(key, found);
    }
    return found;
  };
  try {
    for await (const entry of extract) {
      const { name, type } = entry.header;
      if (type !== 'file') throw refuse(`entry ${JSON.stringify(name)} is a ${type}, not a file`);
      // A second run.json or events file would silently replace the first: which one is the run is then anyone's guess.
      if (seen.has(name)) throw refuse(`entry ${JSON.stringify(name.slice(0, 200))} appears twice`);
      seen.add(name);
      archiveBytes += entry.header.size ?? 0;
      checkBytes();
      const text = async () => {
        const left = maxJsonBytes - jsonBytes;
        const room = Math.min(MAX_JSON_ENTRY_BYTES, left);
        const read = await readText(entry as AsyncIterable<Uint8Array>, name, room, left < MAX_JSON_ENTRY_BYTES ? { maxJsonBytes, family } : null);
        jsonBytes += Buffer.byteLength(read);
        return read;
      };
      const blob = /^blobs\/([0-9a-f]{64})$/.exec(name);
      const ofRun = RUN_ENTRY.exec(name);
      if (blob) {
        const sha256 = blob[1]!;
        const content = await artifacts.blobs.stage(entry as AsyncIterable<Uint8Array>, { maxBytes: maxBlobBytes });
        staged.set(sha256, content);
        if (content.sha256 !== sha256) throw refuse(`the content of ${name} does not hash to its name`);
      } else if (ofRun) {
        const [, id, file, events] = ofRun;
        if (id !== undefined) {
          if (!RunId.safeParse(id).success) throw refuse(`entry ${JSON.stringify(name.slice(0, 200))} is under runs/ but ${JSON.stringify(id)} is not a run id`);
          family = true;
          checkBytes();
        }
        const run = partsOf(id ?? '');
        if (events !== undefined) {
          const lines = (await text()).split('\n').filter((l) => l.length > 0);
          run.eventFiles.set(Number(events), lines.map((l, i) => parseJson(StoredEvent, l, `${name} line ${i + 1}`) as RunEvent));
        } else if (file === 'run.json') run.run = parseRun(await text(), name);
        else run.records = parseJson(z.array(Artifact), await text(), name);
      } else if (name === 'runtrail-export.json') {
        manifest = parseManifest(await readText(entry as AsyncIterable<Uint8Array>, name, MAX_JSON_ENTRY_BYTES, null), checks.maxRuns);
        if (manifest.version === FAMILY_ARCHIVE_VERSION) family = true;
        checkBytes();
      } else {
        throw refuse(
          `unexpected entry ${JSON.stringify(name.slice(0, 200))}; an export holds only runtrail-export.json, run.json, events/, artifacts.json and blobs/ ` +
            '(a family export: runtrail-export.json, runs/<id>/run.json, runs/<id>/events/, runs/<id>/artifacts.json and blobs/)',
        );
      }
    }
  } finally {
    // Stop reading the body once we stop reading the archive (a refusal mid-way).
    extract.destroy();
    await feeding.catch(() => undefined);
  }
  await feeding;
  if (!manifest) throw refuse('runtrail-export.json is missing: this is not a runtrail export');
  const runs = manifest.version === ARCHIVE_VERSION ? [await singleRun(manifest, parts, checks)] : await familyRuns(manifest, parts, checks);
  for (const bundle of runs) await checkRecords(artifacts, bundle, staged);
  // Content no record names would be committed with the run and never removed: no delete knows of it.
  const named = new Set(runs.flatMap((b) => b.artifacts.map((a) => a.sha256)));
  const stray = [...staged.keys()].find((sha256) => !named.has(sha256));
  if (stray !== undefined) throw refuse(`blobs/${stray} is the content of no artifact in artifacts.json`);
  return { runs, family: manifest.version === FAMILY_ARCHIVE_VERSION, staged };
}

/** The run of a version 1 archive, checked whole, its parent here. */
async function singleRun(manifest: Manifest, parts: Map<string, RunParts>, checks: ImportChecks): Promise<RunBundle> {
  const family = [...parts.keys()].find((key) => key !== '');
  if (family !== undefined) throw refuse(`runs/${family}/ is a family export's entry, but runtrail-export.json is of version ${ARCHIVE_VERSION}, a single run`);
  const { run, records } = parts.get('') ?? { run: null, records: null };
  if (!run || !records) throw refuse(`${run ? 'artifacts.json' : 'run.json'} is missing`);
  if (run.id !== manifest.runId) throw refuse('run.json is not the run runtrail-export.json names');
  if (!isTerminalStatus(run.status)) throw refuse(`the run is ${run.status}; export a run after it ends`);
  const bundle = { run, events: eventsOf(run, parts.get('')!), artifacts: records };
  await checkAsCreatedAndAppended(bundle.run, bundle.events, checks);
  if (run.parentId !== null && !(await checks.runExists(run.parentId))) {
    throw refuse(`run.json: parentId: parent run ${run.parentId} does not exist here; import the parent first`);
  }
  return bundle;
}

/**
 * The runs of a version 2 archive, each checked as a single run is, every
 * run the manifest names there and no other, each one's parent in the
 * archive or here; ordered parents before children, whatever the order of
 * the manifest, so the store can write them in one pass.
 */
async function familyRuns(manifest: Manifest & { runs: string[] }, parts: Map<string, RunParts>, checks: ImportChecks): Promise<RunBundle[]> {
  if (parts.has('')) throw refuse(`run.json, events/ and artifacts.json belong under runs/<id>/ in a family export (runtrail-export.json is of version ${FAMILY_ARCHIVE_VERSION})`);
  const ids = new Set(manifest.runs);
  if (ids.size !== manifest.runs.length) throw refuse('runtrail-export.json: runs names a run twice');
  if (manifest.runs[0] !== manifest.runId) throw refuse('runtrail-export.json: runs must begin with runId, the run the family was exported from');
  const stray = [...parts.keys()].find((id) => !ids.has(id));
  if (stray !== undefined) throw refuse(`runs/${stray}/ is not a run runtrail-export.json names`);
  const byId = new Map<string, RunBundle>();
  for (const id of manifest.runs) {
    const found = parts.get(id);
    if (!found?.run || !found.records) throw refuse(`runs/${id}/${found?.run ? 'artifacts.json' : 'run.json'} is missing`);
    const { run } = found;
    if (run.id !== id) throw refuse(`runs/${id}/run.json is run ${run.id}, not the run its folder names`);
    if (!isTerminalStatus(run.status)) {
      throw refuse(`run ${id} (${run.name}) is ${run.status}: a family is imported only when every run in it has ended; export it again once it ends`);
    }
    const bundle = { run, events: eventsOf(run, found, `runs/${id}/`), artifacts: found.records };
    await checkAsCreatedAndAppended(run, bundle.events, checks, `runs/${id}/run.json`);
    byId.set(id, bundle);
  }
  const top = byId.get(manifest.runId)!.run;
  if (top.parentId !== null && ids.has(top.parentId)) {
    throw refuse(`runtrail-export.json: runId ${top.id} is not the top of the family: its parent run ${top.parentId} is in the archive too`);
  }
  for (const { run } of byId.values()) {
    if (run.parentId === null || ids.has(run.parentId)) continue;
    if (!(await checks.runExists(run.parentId))) {
      throw refuse(
        `run ${run.id} (runs/${run.id}/run.json): parentId: its parent run ${run.parentId} is neither in the archive nor here; ` +
          'import the parent first, or export the family from a run above it',
      );
    }
  }
  return parentsFirst(manifest.runs, byId);
}

/** The runs with each one after its parent; a cycle of parents (no run of it is above the others) is refused. */
function parentsFirst(order: string[], byId: Map<string, RunBundle>): RunBundle[] {
  const out: RunBundle[] = [];
  const placed = new Set<string>();
  for (const id of order) {
    const chain: RunBundle[] = [];
    const onChain = new Set<string>();
    for (let at: string | null = id; at !== null && byId.has(at) && !placed.has(at); at = byId.get(at)!.run.parentId) {
      if (onChain.has(at)) throw refuse(`run ${at} is its own ancestor through parentId: the runs' parents form a loop`);
      onChain.add(at);
      chain.push(byId.get(at)!);
    }
    for (const bundle of chain.reverse()) {
      placed.add(bundle.run.id);
      out.push(bundle);
    }
  }
  return out;
}

/** A run's events from its files, checked to be exactly its seq 1..seq in order. */
function eventsOf(run: Run, found: RunParts, where = ''): RunEvent[] {
  const order = [...found.eventFiles.keys()].sort((a, b) => a - b);
  const events = order.flatMap((n) => found.eventFiles.get(n)!);
  events.forEach((e, i) => {
    if (e.runId !== run.id || e.seq !== i + 1) throw refuse(`${where}events are not run ${run.id}'s seq 1..${events.length} in order (at seq ${e.seq})`);
  });
  if (events.length !== run.seq) throw refuse(`${where}run.json says seq ${run.seq} but the archive holds ${events.length} events`);
  return events;
}

/** A run's artifact records: its own, each name once, each content in the archive (or here) at its size. */
async function checkRecords(artifacts: ArtifactService, { run, artifacts: records }: RunBundle, staged: Map<string, StagedBlob>): Promise<void> {
  const names = new Set<string>();
  for (const a of records) {
    if (a.runId !== run.id) throw refuse(`artifact ${a.name} belongs to another run`);
    if (names.has(a.name)) throw refuse(`artifact ${a.name} is listed twice`);
    names.add(a.name);
    const blob = staged.get(a.sha256);
    if (blob ? blob.size !== a.size : !(await artifacts.blobs.has(a.sha256))) throw refuse(`the content of artifact ${a.name} (blobs/${a.sha256}) is missing or of another size`);
  }
}

/**
 * The checks a create and the appends of these events would have made
 * (event types and data, sizes; the parent is checked by the caller), and the ones that keep the
 * list in order (an id no later than now) and the run whole (it ends with
 * the terminal event of its status, and only there).
 */
async function checkAsCreatedAndAppended(run: Run, events: RunEvent[], checks: ImportChecks, where = 'run.json'): Promise<void> {
  const issues = validateEventData(events as EventInput[]);
  if (issues.length > 0) throw refuse(invalidRequest('events', issues).message);
  try {
    if (checks.limits) {
      checkRunData(run, checks.limits);
      checkEventData(events, checks.limits);
    }
  } catch (err) {
    if (RuntrailError.isCode(err, 'payload_too_large')) {
      throw new RuntrailError('payload_too_large', `not a valid runtrail export: ${err.message}; nothing was imported`, err.details);
    }
    throw err;
  }
  if (runIdTime(run.id) > checks.now() + MAX_ID_CLOCK_SKEW_MS) {
    throw refuse(`${where}: id ${run.id} was minted at ${new Date(runIdTime(run.id)).toISOString()}, later than now here`);
  }
  const end = events.findIndex((e) => isTerminalType(e.type));
  const last = events.at(-1);
  if (end !== events.length - 1 || !last || !isTerminalType(last.type) || terminalStatusOf(last.type) !== run.status) {
    throw refuse(`the run is ${run.status} but its events do not end with its one run.${run.status} event`);
  }
}

/**
 * The manifest, with the two ways an archive from elsewhere fails said as
 * what they are: another kind of file, or a newer runtrail's format that
 * this server cannot read (not "expected 1"); and a family over this
 * server's count of runs said as that limit.
 */
function parseManifest(text: string, maxRuns: number): Manifest {
  const where = 'runtrail-export.json';
  const head = parseJson(z.object({ format: z.unknown(), version: z.unknown(), runs: z.unknown().optional() }), text, where);
  if (head.format !== ARCHIVE_FORMAT) throw refuse(`${where}: format is ${JSON.stringify(head.format)}, not ${JSON.stringify(ARCHIVE_FORMAT)}: this is not a runtrail run export`);
  if (typeof head.version === 'number' && Number.isInteger(head.version) && head.version > FAMILY_ARCHIVE_VERSION) {
    throw refuse(
      `${where}: the archive is format version ${head.version}, written by a newer runtrail; this server reads versions ${ARCHIVE_VERSION} and ${FAMILY_ARCHIVE_VERSION}: ` +
        'upgrade it, or import into a server as new as the one that exported the run',
    );
  }
  if (Array.isArray(head.runs) && head.runs.length > maxRuns) throw tooManyRuns(maxRuns, head.runs.length);
  return parseJson(Manifest, text, where);
}

function tooManyRuns(maxRuns: number, count?: number): RuntrailError {
  return tooLarge(`the archive holds ${count ?? `more than ${maxRuns}`} runs; this server imports at most ${maxRuns} in one archive (maxImportRuns)`);
}

function tooLarge(why: string): RuntrailError {
  return new RuntrailError('payload_too_large', `${why}; nothing was imported`);
}

/**
 * The body as it came, and whether it is gzip data (its first two bytes),
 * read without losing a byte: a single first chunk of one byte is joined
 * to the next before deciding.
 */
async function sniffGzip(body: AsyncIterable<Uint8Array>): Promise<{ gzipped: boolean; bytes: AsyncIterable<Uint8Array> }> {
  const iterator = body[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let length = 0;
  while (length < GZIP_MAGIC.length) {
    const next = await iterator.next();
    if (next.done) break;
    head.push(next.value);
    length += next.value.length;
  }
  const first = Buffer.concat(head);
  const gzipped = GZIP_MAGIC.every((byte, i) => first[i] === byte);
  async function* bytes(): AsyncIterable<Uint8Array> {
    try {
      if (first.length > 0) yield first;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } finally {
      // Stopped early (a refusal): the body's own iterator decides what stopping means for it.
      await iterator.return?.();
    }
  }
  return { gzipped, bytes: bytes() };
}

/** run.json, parsed as ImportedRun with every label kept as sent (also one named "__proto__", as create keeps it). */
function parseRun(text: string, where: string): Run {
  const parsed = parseJson(ImportedRun, text, where) as Run;
  const labels = labelsAsSent(JSON.parse(text), parsed.labels);
  return { ...parsed, labels: labels ?? parsed.labels };
}

/**
 * How much of a refusal's reason is said, its start and its end: a reason
 * names what the archive holds (an entry's name, its format), and an entry
 * name of half a megabyte (a tar's long-name header) came back whole.
 */
const MAX_REASON_START = 300;
const MAX_REASON_END = 200;

function refuse(why: string): RuntrailError {
  const said =
    why.length <= MAX_REASON_START + MAX_REASON_END
      ? why
      : `${why.slice(0, MAX_REASON_START)}…(cut from ${why.length} characters)…${why.slice(-MAX_REASON_END)}`;
  return new RuntrailError('invalid_request', `not a valid runtrail export: ${said}; nothing was imported`);
}

/**
 * An entry as text, of at most `room` bytes; `ofArchive` when the room left
 * is the whole archive's (maxJsonBytes), not the entry's.
 */
async function readText(entry: AsyncIterable<Uint8Array>, name: string, room: number, ofArchive: { maxJsonBytes: number; family: boolean } | null): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of entry) {
    size += chunk.length;
    if (size > room && ofArchive) {
      const most = `${formatMiB(ofArchive.maxJsonBytes)} (at ${name}), the most an import holds in memory to write`;
      throw tooLarge(
        ofArchive.family
          ? `the runs and events of the archive add up to more than ${most} a family in one transaction; export it in parts: the run alone, then the family of each run under it`
          : `the run and its events add up to more than ${most} a run in one transaction`,
      );
    }
    if (size > room) throw refuse(`${name} is larger than ${MAX_JSON_ENTRY_BYTES / 1024 / 1024} MiB, the most an import reads of one JSON entry`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function formatMiB(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}

function parseJson<S extends z.ZodType>(schema: S, text: string, where: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw refuse(`${where} is not JSON (${(err as Error).message})`);
  }
  try {
    // The protocol's parse names the field as every route does (`invalid run.json: name: …`).
    return parseOrThrow(schema, value, where);
  } catch (err) {
    throw refuse((err as Error).message);
  }
}

