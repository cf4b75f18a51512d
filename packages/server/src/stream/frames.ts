import type { RunEvent } from '@runtrail/protocol';
import type { Outlet } from './outlet.js';

/**
 * Frames stay near this size when catching up: big enough that a replay of
 * 100,000 events is a few hundred writes, small enough that one frame over
 * the send bound does not matter.
 */
export const TARGET_FRAME_BYTES = 64 * 1024;

/** `{"type":"events",...}` WebSocket frames of consecutive events, each about TARGET_FRAME_BYTES at most. */
export function wsEventFrames(runId: string, events: RunEvent[]): Frame[] {
  const head = `{"type":"events","runId":${JSON.stringify(runId)},"events":[`;
  const frames: Frame[] = [];
  let parts: string[] = [];
  let size = 0;
  for (const event of events) {
    const json = JSON.stringify(event);
    if (parts.length > 0 && size + json.length > TARGET_FRAME_BYTES) {
      frames.push({ data: `${head}${parts.join(',')}]}`, count: parts.length });
      parts = [];
      size = 0;
    }
    parts.push(json);
    size += json.length + 1;
  }
  if (parts.length > 0) frames.push({ data: `${head}${parts.join(',')}]}`, count: parts.length });
  return frames;
}

/** SSE records, one per event with `id:` = seq, joined into chunks of about TARGET_FRAME_BYTES. */
export function sseEventChunks(events: RunEvent[], eventName: string): Frame[] {
  const chunks: Frame[] = [];
  let chunk = '';
  let count = 0;
  for (const event of events) {
    // JSON.stringify escapes newlines, so the record is one `data:` line.
    const record = `id: ${event.seq}\nevent: ${eventName}\ndata: ${JSON.stringify(event)}\n\n`;
    if (count > 0 && chunk.length + record.length > TARGET_FRAME_BYTES) {
      chunks.push({ data: chunk, count });
      chunk = '';
      count = 0;
    }
    chunk += record;
    count++;
  }
  if (count > 0) chunks.push({ data: chunk, count });
  return chunks;
}

/** Serialized frames with how many events each holds. */
export interface Frame {
  data: string;
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
