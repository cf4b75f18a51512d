import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
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
import type { StagedBlob } from '@runtrail/store';
import type { ArtifactService } from './artifact-service.js';
import { checkEventData, checkRunData, type PayloadLimits } from '../security/index.js';

/**
 * A run as one tar archive (`GET /runs/:id/export`, `POST /import`):
 *
 *   runtrail-export.json   {format: "runtrail-run", version: 1, runId}
 *   run.json               the run record
 *   events/000001.ndjson   its events in seq order, at most EVENTS_PER_FILE and EVENTS_FILE_BYTES a file
 *   artifacts.json         its artifact records, in ordinal order
 *   blobs/<sha256>         each distinct content once
 *
 * Written as a stream: memory holds one events file or one JSON entry at a
 * time. Read as one too, except that an import holds all of the run's
 * events until the store writes them in one transaction. Never an
 * artifact's content: that is staged to disk.
 */
export const ARCHIVE_FORMAT = 'runtrail-run';
export const ARCHIVE_VERSION = 1;
const EVENTS_PER_FILE = 5000;
/**
 * An events file is closed before it passes this size, however few events
 * it holds: 5000 events of 14 KB each made a file over the 64 MiB an import
 * reads of one entry, so a run exported whole could not be imported.
 */
const EVENTS_FILE_BYTES = 16 * 1024 * 1024;
/** Largest JSON entry an import reads into memory. */
const MAX_JSON_ENTRY_BYTES = 64 * 1024 * 1024;
/** The first bytes of gzip data (RFC 1952): `gzip run.tar` is how archives are usually kept. */
const GZIP_MAGIC = [0x1f, 0x8b] as const;

const Manifest = z.object({ format: z.literal(ARCHIVE_FORMAT), version: z.literal(ARCHIVE_VERSION), runId: RunId });
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
}

export function exportRun(artifacts: ArtifactService, run: Run, events: AsyncIterable<RunEvent[]>, records: Artifact[]): Readable {
  const pack = tar.pack();
  const json = (name: string, value: unknown) => addBuffer(pack, name, Buffer.from(`${JSON.stringify(value, null, 2)}\n`));
  void (async () => {
    await json('runtrail-export.json', { format: ARCHIVE_FORMAT, version: ARCHIVE_VERSION, runId: run.id });
    await json('run.json', run);
    let file = 0;
    let lines: Buffer[] = [];
    let bytes = 0;
    const flush = async () => {
      if (lines.length === 0) return;
      await addBuffer(pack, `events/${String(++file).padStart(6, '0')}.ndjson`, Buffer.concat(lines));
      lines = [];
      bytes = 0;
    };
    for await (const page of events) {
      for (const e of page) {
        const line = Buffer.from(`${JSON.stringify(e)}\n`);
        if (lines.length >= EVENTS_PER_FILE || (lines.length > 0 && bytes + line.length > EVENTS_FILE_BYTES)) await flush();
        lines.push(line);
        bytes += line.length;
      }
    }
    await flush();
    await json('artifacts.json', records);
    const written = new Set<string>();
    for (const a of records) {
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
  return Readable.from(pack);
}

function addBuffer(pack: tar.Pack, name: string, content: Buffer): Promise<void> {
  return new Promise((resolve, reject) => pack.entry({ name, size: content.length }, content, (err) => (err ? reject(err) : resolve())));
}

export interface ImportedBundle {
  run: Run;
  events: RunEvent[];
  artifacts: Artifact[];
  /** Content read from the archive, staged, not yet committed. */
  staged: Map<string, StagedBlob>;
}

/**
 * Read an archive into a validated bundle. Anything unexpected (an entry
 * that is not one of the names above, a path that would leave the archive,
 * a truncated or malformed file, content whose hash is not its name,
 * events that do not fold into the run) is `invalid_request`, and the
 * content staged so far is discarded: nothing changes.
 */
export async function readArchive(artifacts: ArtifactService, body: AsyncIterable<Uint8Array>, checks: ImportChecks): Promise<ImportedBundle> {
  const staged = new Map<string, StagedBlob>();
  try {
    return await readEntries(artifacts, body, checks, staged);
  } catch (err) {
    for (const blob of staged.values()) await blob.discard();
    if (err instanceof RuntrailError) throw err;
    throw new RuntrailError('invalid_request', `the archive is truncated or malformed: ${(err as Error).message}; nothing was imported`);
  }
}

async function readEntries(
  artifacts: ArtifactService,
  body: AsyncIterable<Uint8Array>,
  checks: ImportChecks,
  staged: Map<string, StagedBlob>,
): Promise<ImportedBundle> {
  const maxBlobBytes = checks.maxBlobBytes;
  const extract = tar.extract();
  const { gzipped, bytes } = await sniffGzip(body);
  const feeding = gzipped ? pipeline(Readable.from(bytes), createGunzip(), extract) : pipeline(Readable.from(bytes), extract);
  // Its failure (a truncated archive) also ends the loop below, which reports it;
  // this handler only keeps it from counting as unhandled before `await feeding`.
  feeding.catch(() => undefined);
  let manifest: z.infer<typeof Manifest> | null = null;
  let run: Run | null = null;
  let records: Artifact[] | null = null;
  const eventFiles = new Map<number, RunEvent[]>();
  const seen = new Set<string>();
  try {
    for await (const entry of extract) {
      const { name, type } = entry.header;
      if (type !== 'file') throw refuse(`entry ${JSON.stringify(name)} is a ${type}, not a file`);
      // A second run.json or events file would silently replace the first: which one is the run is then anyone's guess.
      if (seen.has(name)) throw refuse(`entry ${JSON.stringify(name.slice(0, 200))} appears twice`);
      seen.add(name);
      const blob = /^blobs\/([0-9a-f]{64})$/.exec(name);
      const events = /^events\/(\d{6})\.ndjson$/.exec(name);
      if (blob) {
        const sha256 = blob[1]!;
        const content = await artifacts.blobs.stage(entry as AsyncIterable<Uint8Array>, { maxBytes: maxBlobBytes });
        staged.set(sha256, content);
        if (content.sha256 !== sha256) throw refuse(`the content of ${name} does not hash to its name`);
      } else if (events) {
        const text = await readText(entry as AsyncIterable<Uint8Array>, name);
        const lines = text.split('\n').filter((l) => l.length > 0);
        eventFiles.set(Number(events[1]), lines.map((l, i) => parseJson(StoredEvent, l, `${name} line ${i + 1}`) as RunEvent));
      } else if (name === 'runtrail-export.json') manifest = parseManifest(await readText(entry as AsyncIterable<Uint8Array>, name));
      else if (name === 'run.json') run = parseRun(await readText(entry as AsyncIterable<Uint8Array>, name));
      else if (name === 'artifacts.json') records = parseJson(z.array(Artifact), await readText(entry as AsyncIterable<Uint8Array>, name), name);
      else throw refuse(`unexpected entry ${JSON.stringify(name.slice(0, 200))}; an export holds only runtrail-export.json, run.json, events/, artifacts.json and blobs/`);
    }
  } finally {
    // Stop reading the body once we stop reading the archive (a refusal mid-way).
    extract.destroy();
    await feeding.catch(() => undefined);
  }
  await feeding;
  if (!manifest) throw refuse('runtrail-export.json is missing: this is not a runtrail export');
  if (!run || !records) throw refuse(`${run ? 'artifacts.json' : 'run.json'} is missing`);
  if (run.id !== manifest.runId) throw refuse('run.json is not the run runtrail-export.json names');
  if (!isTerminalStatus(run.status)) throw refuse(`the run is ${run.status}; export a run after it ends`);
  const order = [...eventFiles.keys()].sort((a, b) => a - b);
  const events = order.flatMap((n) => eventFiles.get(n)!);
  events.forEach((e, i) => {
    if (e.runId !== run!.id || e.seq !== i + 1) throw refuse(`events are not run ${run!.id}'s seq 1..${events.length} in order (at seq ${e.seq})`);
  });
  if (events.length !== run.seq) throw refuse(`run.json says seq ${run.seq} but the archive holds ${events.length} events`);
  await checkAsCreatedAndAppended(run, events, checks);
  const names = new Set<string>();
  for (const a of records) {
    if (a.runId !== run.id) throw refuse(`artifact ${a.name} belongs to another run`);
    if (names.has(a.name)) throw refuse(`artifact ${a.name} is listed twice`);
    names.add(a.name);
    const blob = staged.get(a.sha256);
    if (blob ? blob.size !== a.size : !(await artifacts.blobs.has(a.sha256))) throw refuse(`the content of artifact ${a.name} (blobs/${a.sha256}) is missing or of another size`);
  }
  // Content no record names would be committed with the run and never removed: no delete knows of it.
  const named = new Set(records.map((a) => a.sha256));
  const stray = [...staged.keys()].find((sha256) => !named.has(sha256));
  if (stray !== undefined) throw refuse(`blobs/${stray} is the content of no artifact in artifacts.json`);
  return { run, events, artifacts: records, staged };
}

/**
 * The checks a create and the appends of these events would have made
 * (event types and data, sizes, the parent), and the ones that keep the
 * list in order (an id no later than now) and the run whole (it ends with
 * the terminal event of its status, and only there).
 */
async function checkAsCreatedAndAppended(run: Run, events: RunEvent[], checks: ImportChecks): Promise<void> {
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
    throw refuse(`run.json: id ${run.id} was minted at ${new Date(runIdTime(run.id)).toISOString()}, later than now here`);
  }
  if (run.parentId !== null && !(await checks.runExists(run.parentId))) {
    throw refuse(`run.json: parentId: parent run ${run.parentId} does not exist here; import the parent first`);
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
 * this server cannot read (not "expected 1").
 */
function parseManifest(text: string): z.infer<typeof Manifest> {
  const where = 'runtrail-export.json';
  const head = parseJson(z.object({ format: z.unknown(), version: z.unknown() }), text, where);
  if (head.format !== ARCHIVE_FORMAT) throw refuse(`${where}: format is ${JSON.stringify(head.format)}, not ${JSON.stringify(ARCHIVE_FORMAT)}: this is not a runtrail run export`);
  if (typeof head.version === 'number' && Number.isInteger(head.version) && head.version > ARCHIVE_VERSION) {
    throw refuse(
      `${where}: the archive is format version ${head.version}, written by a newer runtrail; this server reads version ${ARCHIVE_VERSION}: ` +
        'upgrade it, or import into a server as new as the one that exported the run',
    );
  }
  return parseJson(Manifest, text, where);
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
function parseRun(text: string): Run {
  const parsed = parseJson(ImportedRun, text, 'run.json') as Run;
  const labels = labelsAsSent(JSON.parse(text), parsed.labels);
  return { ...parsed, labels: labels ?? parsed.labels };
}

function refuse(why: string): RuntrailError {
  return new RuntrailError('invalid_request', `not a valid runtrail export: ${why}; nothing was imported`);
}

async function readText(entry: AsyncIterable<Uint8Array>, name: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of entry) {
    size += chunk.length;
    if (size > MAX_JSON_ENTRY_BYTES) throw refuse(`${name} is larger than ${MAX_JSON_ENTRY_BYTES / 1024 / 1024} MiB, the most an import reads of one JSON entry`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
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

