import type { RunEvent } from '@runtrail/protocol';
import type { Outlet } from './outlet.js';

/**
 * Frames stay near this size when catching up: big enough that a replay of
 * 100,000 events is a few hundred writes, small enough that one frame over
 * the send bound does not matter.
 */
export const TARGET_FRAME_BYTES = 64 * 1024;

/**
 * Frames of a hub batch, made once and shared: the hub hands the same array
 * to every caught-up subscriber, so fan-out to N watchers serializes once,
 * not N times.
 */
const wsFrameCache = new WeakMap<RunEvent[], Frame[]>();
const sseFrameCache = new WeakMap<RunEvent[], Frame[]>();

/** `{"type":"events",...}` WebSocket frames of consecutive events, each about TARGET_FRAME_BYTES at most. */
export function wsEventFrames(runId: string, events: RunEvent[]): Frame[] {
  let frames = wsFrameCache.get(events);
  if (!frames) wsFrameCache.set(events, (frames = buildWsFrames(runId, events)));
  return frames;
}

function buildWsFrames(runId: string, events: RunEvent[]): Frame[] {
  const head = `{"type":"events","runId":${JSON.stringify(runId)},"events":[`;
  const frames: Frame[] = [];
  let parts: string[] = [];
  let size = 0;
  for (const event of events) {
    const json = JSON.stringify(event);
    if (parts.length > 0 && size + json.length > TARGET_FRAME_BYTES) {
      frames.push({ data: Buffer.from(`${head}${parts.join(',')}]}`), count: parts.length });
      parts = [];
      size = 0;
    }
    parts.push(json);
    size += json.length + 1;
  }
  if (parts.length > 0) frames.push({ data: Buffer.from(`${head}${parts.join(',')}]}`), count: parts.length });
  return frames;
}

/** SSE records, one per event with `id:` = seq, joined into chunks of about TARGET_FRAME_BYTES. */
export function sseEventChunks(events: RunEvent[], eventName: string): Frame[] {
  let frames = sseFrameCache.get(events);
  if (!frames) sseFrameCache.set(events, (frames = buildSseChunks(events, eventName)));
  return frames;
}

function buildSseChunks(events: RunEvent[], eventName: string): Frame[] {
  const chunks: Frame[] = [];
  let chunk = '';
  let count = 0;
  for (const event of events) {
    // JSON.stringify escapes newlines, so the record is one `data:` line.
    const record = `id: ${event.seq}\nevent: ${eventName}\ndata: ${JSON.stringify(event)}\n\n`;
    if (count > 0 && chunk.length + record.length > TARGET_FRAME_BYTES) {
      chunks.push({ data: Buffer.from(chunk), count });
      chunk = '';
      count = 0;
    }
    chunk += record;
    count++;
  }
  if (count > 0) chunks.push({ data: Buffer.from(chunk), count });
  return chunks;
}

/** Serialized frames (UTF-8, encoded once for every receiver) with how many events each holds. */
export interface Frame {
  data: Buffer;
  count: number;
}

/**
 * Write frames in order while the outlet is under its bound; returns how
 * many events went out (a prefix). The rest is re-read from the store.
 */
export function sendFrames(outlet: Outlet, frames: Frame[]): number {
  let sent = 0;
  for (const frame of frames) {
    if (outlet.blocked || outlet.closed) break;
    outlet.send(frame.data);
    sent += frame.count;
  }
  return sent;
}
