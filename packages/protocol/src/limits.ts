/**
 * The default sizes a server accepts for one event's data, defined here once:
 * the server's settings default to them (maxEventDataBytes, maxMetaBytes) and
 * the SDKs refuse larger data at the call site, where the caller can still
 * do something about it, instead of having the whole batch refused later.
 * The Python client mirrors them in clients/python/runtrail/_limits.py (a
 * test compares the two).
 */

/** Bytes of one event's data as JSON (UTF-8), the `meta` event's excepted. */
export const MAX_EVENT_DATA_BYTES = 1024 * 1024;
/** Bytes of a `meta` event's data as JSON (UTF-8): meta is kept whole in every snapshot. */
export const MAX_META_BYTES = 64 * 1024;

/** Characters of a run's error message and a failed call's error: the SDKs cut longer ones to this, so a long error still ends a run. */
export const MAX_ERROR_MESSAGE_CHARS = 8192;
/** Characters of one log message. */
export const MAX_LOG_MESSAGE_CHARS = 16_384;
/** Characters of a call's label and of a progress message. */
export const MAX_LABEL_CHARS = 500;
/** Characters of an event's type (a runtrail type, or an extension type starting with `x.`). */
export const MAX_EVENT_TYPE_CHARS = 100;

/**
 * Bytes of `text` as UTF-8, counted without encoding it (the SDKs measure
 * every event, in the browser too, where there is no Buffer). A lone
 * surrogate counts as the 3 bytes of the U+FFFD it is encoded as.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: 2 units, 4 bytes.
      bytes += 2;
      i++;
    } else bytes += 2;
  }
  return bytes;
}
