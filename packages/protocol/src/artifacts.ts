import { z } from 'zod';
import { JsonValue } from './events.js';
import { RuntrailError } from './errors.js';

/** Longest artifact name, in characters. */
export const MAX_ARTIFACT_NAME = 400;
/** Largest `x-runtrail-metadata` value, in bytes of JSON. */
export const MAX_ARTIFACT_METADATA_BYTES = 16 * 1024;
/**
 * The name of the artifact that links to a run's output log file (a `uri`,
 * not stored content: the log is still being written while the run runs).
 * The server serves the file at `GET /runs/:id/log` when it has it.
 */
export const OUTPUT_LOG_ARTIFACT = 'output.log';
/** Header carrying an artifact's free JSON metadata on upload. */
export const ARTIFACT_METADATA_HEADER = 'x-runtrail-metadata';
/** Header of an export naming the status of the run it holds: an import takes only ended runs, so a client can say so as it saves it. */
export const EXPORT_STATUS_HEADER = 'x-runtrail-run-status';
/** Header of a family export (`?family=true`) saying how many runs it holds, the run and every run under it. */
export const EXPORT_RUNS_HEADER = 'x-runtrail-export-runs';
/**
 * Header of an export giving about how many bytes the archive will have, for
 * a progress display only: the archive is streamed as it is read (no
 * Content-Length), and its size is known exactly only for records and
 * artifact content; the events are estimated from a sample of them.
 */
export const EXPORT_ESTIMATED_BYTES_HEADER = 'x-runtrail-export-estimated-bytes';
/** Header of an import's answer saying how many runs it loaded (more than 1 for a family archive). */
export const IMPORTED_RUNS_HEADER = 'x-runtrail-imported-runs';

/**
 * Why a name is refused, or null. Names are data, never paths: storage is
 * content-addressed and never uses them, but they become file names in
 * exports, downloads and `--collect`, so anything a file system or a shell
 * could read as a path or a control sequence is refused outright.
 */
export function artifactNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_ARTIFACT_NAME) return `is longer than ${MAX_ARTIFACT_NAME} characters`;
  if (name.includes('/') || name.includes('\\')) return 'contains a path separator (/ or \\)';
  if (name.includes('..')) return 'contains ".."';
  if (name === '.') return 'is "."';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'contains a control character';
  // The "Trojan Source" trick: "report\u202Egnp.exe" is shown as "reportexe.png" in every file list.
  if (/[\u202a-\u202e\u2066-\u2069]/.test(name)) return 'contains a bidirectional control character (U+202A to U+202E, U+2066 to U+2069), which shows a name as another';
  return null;
}

export function requireArtifactName(name: string): string {
  const problem = artifactNameProblem(name);
  if (problem) {
    throw new RuntrailError('invalid_request', `artifact name ${JSON.stringify(name.slice(0, 80))} ${problem}; use a plain file name such as 01_input.txt`, {
      issues: [{ path: 'name', message: problem }],
    });
  }
  return name;
}

export const ArtifactName = z.string().superRefine((name, ctx) => {
  const problem = artifactNameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

/** `type/subtype` with optional parameters; what a Content-Type header may say. */
export const ContentType = z
  .string()
  .max(200)
  .regex(/^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\\\r\n]*"|[A-Za-z0-9!#$&^_.+-]+))*$/, 'must be a media type such as text/plain or image/png');

/** One stored artifact: the record the store keeps and the API returns. */
export const Artifact = z.object({
  runId: z.string(),
  /** 1, 2, … in creation order within the run. */
  ordinal: z.number().int().positive(),
  name: ArtifactName,
  contentType: ContentType,
  size: z.number().int().nonnegative(),
  /** Hex sha256 of the content; also its ETag. */
  sha256: Sha256Hex,
  createdAt: z.number().int().nonnegative(),
  metadata: JsonValue.nullable(),
});
export type Artifact = z.infer<typeof Artifact>;

export const ListArtifactsResponseSchema = z.object({ artifacts: z.array(Artifact) });
export type ListArtifactsResponse = z.infer<typeof ListArtifactsResponseSchema>;

export const PutArtifactQuery = z.object({
  replace: z.enum(['true', 'false']).optional(),
});

export const ExportRunQuery = z.object({
  /** `true`: the run with every run under it (children, theirs…), as one archive that imports in one transaction. */
  family: z.enum(['true', 'false']).optional(),
});

/** The `artifact` event of a stored artifact: every field of its record but the run id. */
export function artifactEventData(a: Artifact): Record<string, unknown> {
  const { runId: _runId, metadata, ...rest } = a;
  return metadata === null ? rest : { ...rest, metadata };
}
