import { extname } from 'node:path';

const BY_EXTENSION: Record<string, string> = {
  '.txt': 'text/plain; charset=utf-8',
  '.log': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.markdown': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.tsv': 'text/tab-separated-values; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.ndjson': 'application/x-ndjson',
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.xml': 'application/xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/wav',
  '.ogg': 'audio/ogg',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.bin': 'application/octet-stream',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
};

const MAGIC: Array<[number[], number, string]> = [
  [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 0, 'image/png'],
  [[0xff, 0xd8, 0xff], 0, 'image/jpeg'],
  [[0x47, 0x49, 0x46, 0x38], 0, 'image/gif'],
  [[0x25, 0x50, 0x44, 0x46, 0x2d], 0, 'application/pdf'],
  [[0x50, 0x4b, 0x03, 0x04], 0, 'application/zip'],
  [[0x1f, 0x8b], 0, 'application/gzip'],
  [[0x49, 0x44, 0x33], 0, 'audio/mpeg'],
  [[0x4f, 0x67, 0x67, 0x53], 0, 'audio/ogg'],
  [[0x1a, 0x45, 0xdf, 0xa3], 0, 'video/webm'],
  [[0x66, 0x74, 0x79, 0x70], 4, 'video/mp4'],
];

function startsWith(head: Buffer, bytes: number[], at: number): boolean {
  return head.length >= at + bytes.length && bytes.every((b, i) => head[at + i] === b);
}

/**
 * The content type of an upload that did not say: the magic bytes of
 * common binary formats first (they cannot lie about being text), then the
 * name's extension, then "text if it decodes as UTF-8".
 */
export function sniffContentType(name: string, head: Buffer): string {
  for (const [bytes, at, type] of MAGIC) if (startsWith(head, bytes, at)) return type;
  if (startsWith(head, [0x52, 0x49, 0x46, 0x46], 0) && head.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  if (startsWith(head, [0x52, 0x49, 0x46, 0x46], 0) && head.subarray(8, 12).toString('latin1') === 'WAVE') return 'audio/wav';
  const byName = BY_EXTENSION[extname(name).toLowerCase()];
  if (byName) return byName;
  return looksLikeUtf8Text(head) ? 'text/plain; charset=utf-8' : 'application/octet-stream';
}

/**
 * Text holds no control bytes but tab, line feed, form feed, carriage
 * return, backspace and escape (a terminal log's colours and redraws keep
 * it text); any other, such as the 0x01 0x02 of a binary blob, is binary
 * even though it decodes as UTF-8.
 */
function isBinaryControl(byte: number): boolean {
  return byte <= 0x07 || byte === 0x0b || (byte >= 0x0e && byte <= 0x1a) || (byte >= 0x1c && byte <= 0x1f) || byte === 0x7f;
}

function looksLikeUtf8Text(head: Buffer): boolean {
  if (head.some(isBinaryControl)) return false;
  // The head may end inside a multi-byte character: streaming, the decoder holds an unfinished last one
  // back rather than failing on it. (Cutting the last 3 bytes off instead cut a short text's own last
  // character, so a few words of Japanese were taken for binary.)
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true });
    return true;
  } catch {
    // Not UTF-8: binary content.
    return false;
  }
}

/** `Type/Sub; Charset=X` → `type/sub; charset=X`: one spelling stored per type. */
export function normalizeContentType(value: string): string {
  const [type, ...params] = value.split(';').map((p) => p.trim());
  const normalized = params.filter(Boolean).map((p) => {
    const at = p.indexOf('=');
    return `${p.slice(0, at).toLowerCase()}=${p.slice(at + 1)}`;
  });
  return [type!.toLowerCase(), ...normalized].join('; ');
}

/**
 * Types a browser may show inline from the dashboard's origin: none of
 * them can run script there. Everything else (HTML, SVG, XML, PDF, unknown)
 * is served as an attachment, so opening it downloads instead.
 */
export function isSafeInline(contentType: string): boolean {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (type === 'image/svg+xml') return false;
  // No '+' in audio/video subtypes: an XML-based one (a +xml suffix) is a document a browser may script.
  if (/^(image\/(png|jpeg|gif|webp|avif)|audio\/[a-z0-9.-]+|video\/[a-z0-9.-]+)$/.test(type)) return true;
  return ['text/plain', 'text/csv', 'text/tab-separated-values', 'text/markdown', 'application/json', 'application/x-ndjson'].includes(type);
}
