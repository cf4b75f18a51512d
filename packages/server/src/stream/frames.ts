import { compactEventJson, type EventText, type JoinedEventTexts } from '@runtrail/store';
import type { Outlet } from './outlet.js';

/**
 * Frames stay near this size when catching up: big enough that a replay of
 * 100,000 events is a few hundred writes, small enough that one frame over
 * the send bound does not matter.
 */
export const TARGET_FRAME_BYTES = 64 * 1024;

/**
 * Frames of a batch of events, made once and shared: the hub hands the same
 * array to every watcher of a run in a flush, so the caught-up ones all send
 * the same frames (one build per flush, not per watcher). The events' JSON
 * texts come from the store as they were stored: no event is serialized here.
 */
const wsFrameCache = new WeakMap<EventText[], Frame[]>();
const wsCompactFrameCache = new WeakMap<EventText[], Frame[]>();
const sseFrameCache = new WeakMap<EventText[], Frame[]>();
const sseCompactFrameCache = new WeakMap<EventText[], Frame[]>();

/**
 * `{"type":"events",...}` WebSocket frames of consecutive events, each about
 * TARGET_FRAME_BYTES at most; `compact`: the events without their runId.
 */
export function wsEventFrames(runId: string, events: EventText[], compact = false): Frame[] {
  const cache = compact ? wsCompactFrameCache : wsFrameCache;
  let frames = cache.get(events);
  if (!frames) cache.set(events, (frames = buildWsFrames(runId, events, compact)));
  return frames;
}

function buildWsFrames(runId: string, events: EventText[], compact: boolean): Frame[] {
  const head = `{"type":"events","runId":${JSON.stringify(runId)},"events":[`;
  const strip = compact ? compactEventJson(runId) : null;
  const text = (event: EventText) => (strip ? strip(event.json) : event.json);
  return chunk(events, (parts) => `${head}${parts.join(',')}]}`, text).map((frame) => ({
    data: wsTextFrame(frame.data),
    count: frame.count,
    framed: true,
  }));
}

/**
 * A complete, unmasked WebSocket text frame (RFC 6455 5.2: FIN and opcode 1,
 * then the payload length in 7, 7+16 or 7+64 bits) around `payload`. Built
 * once per shared frame, so each watcher's write is one buffer to its socket
 * instead of ws framing the same payload again (a header allocated, two
 * buffers corked and written) for every watcher.
 */
export function wsTextFrame(payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(wsHeaderBytes(payload.length) + payload.length);
  payload.copy(frame, writeWsHeader(frame, payload.length));
  return frame;
}

/** The size of the header of a frame of `length` payload bytes. */
function wsHeaderBytes(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** Writes the header of a text frame of `length` payload bytes at the start of `target`; returns its size. */
function writeWsHeader(target: Buffer, length: number): number {
  const headerBytes = wsHeaderBytes(length);
  target[0] = 0x81;
  if (headerBytes === 2) target[1] = length;
  else if (headerBytes === 4) {
    target[1] = 126;
    target.writeUInt16BE(length, 2);
  } else {
    target[1] = 127;
    target.writeBigUInt64BE(BigInt(length), 2);
  }
  return headerBytes;
}

/**
 * One `{"type":"events",...}` message of a page the store read joined
 * (catch-up; compact or not as it was read) as a whole WebSocket frame in three parts: the header with the
 * message's head, the page as the store read it, the tail. Written as one
 * (Outlet.sendParts), the page is never copied into a frame of its own: a
 * 100,000-event catch-up allocates and copies 14 MB less.
 */
export function wsJoinedFrameParts(runId: string, page: JoinedEventTexts): Buffer[] {
  const open = `{"type":"events","runId":${JSON.stringify(runId)},"events":[`;
  const openBytes = Buffer.byteLength(open);
  const length = openBytes + page.json.length + FRAME_TAIL.length;
  const head = Buffer.allocUnsafe(wsHeaderBytes(length) + openBytes);
  head.write(open, writeWsHeader(head, length));
  return [head, page.json, FRAME_TAIL];
}
const FRAME_TAIL = Buffer.from(']}');

/**
 * SSE records, one per event with `id:` = seq, joined into chunks of about
 * TARGET_FRAME_BYTES; `compactRunId`: the events without their runId (that
 * run's compact stream).
 */
export function sseEventChunks(events: EventText[], eventName: string, compactRunId?: string): Frame[] {
  const cache = compactRunId === undefined ? sseFrameCache : sseCompactFrameCache;
  let frames = cache.get(events);
  if (!frames) cache.set(events, (frames = buildSseChunks(events, eventName, compactRunId)));
  return frames;
}

function buildSseChunks(events: EventText[], eventName: string, compactRunId: string | undefined): Frame[] {
  const strip = compactRunId === undefined ? null : compactEventJson(compactRunId);
  // Event JSON text never holds a raw newline (JSON escapes them), so each record is one `data:` line.
  return chunk(events, (parts) => parts.join(''), (event) => `id: ${event.seq}\nevent: ${eventName}\ndata: ${strip ? strip(event.json) : event.json}\n\n`);
}

/** Group events' parts into frames of about TARGET_FRAME_BYTES (at least one event each). */
function chunk(events: EventText[], frame: (parts: string[]) => string, part: (event: EventText) => string): Frame[] {
  const frames: Frame[] = [];
  let parts: string[] = [];
  let size = 0;
  for (const event of events) {
    const text = part(event);
    if (parts.length > 0 && size + text.length > TARGET_FRAME_BYTES) {
      frames.push({ data: Buffer.from(frame(parts)), count: parts.length });
      parts = [];
      size = 0;
    }
    parts.push(text);
    size += text.length + 1;
  }
  if (parts.length > 0) frames.push({ data: Buffer.from(frame(parts)), count: parts.length });
  return frames;
}

/** Serialized frames (UTF-8, encoded once for every receiver) with how many events each holds. */
export interface Frame {
  data: Buffer;
  count: number;
  /** `data` is already a whole frame of the transport (a WebSocket header included): written as it is. */
  framed?: boolean;
}

/**
 * Write frames in order while the outlet is under its bound; returns how
 * many events went out (a prefix). The rest is re-read from the store.
 */
export function sendFrames(outlet: Outlet, frames: Frame[]): number {
  let sent = 0;
  for (const frame of frames) {
    if (outlet.blocked || outlet.closed) break;
    outlet.send(frame.data, frame.framed === true);
    sent += frame.count;
  }
  return sent;
}
