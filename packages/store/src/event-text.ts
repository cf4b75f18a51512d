import type { RunEvent } from '@runtrail/protocol';

/**
 * A stored event as the JSON text every reader is sent: exactly the bytes
 * of `JSON.stringify(event)`, its stored body with the run id put in front
 * (never parsed on the way out). Serialized once at the append, it is what
 * is stored, and what live frames and catch-up reads are built from, so
 * fan-out to N watchers costs no parse or stringify per event per watcher.
 * `seq` and `type` are what a stream needs to frame it (where to resume,
 * where the run ends).
 */
export interface EventText {
  seq: number;
  type: string;
  json: string;
}

/**
 * What the events table stores of an event (its `body` column): the event's
 * JSON text without its run id, which is the row's. Keys in RunEvent's
 * order; `dataJson` is the JSON text of its data (`null`: none, which reads
 * as {}). Built once, at the append.
 */
export function eventBody(seq: number, type: string, ts: number, dataJson: string | null, id: string | null | undefined): string {
  const tail = id === null || id === undefined ? '}' : `,"id":${JSON.stringify(id)}}`;
  return `{"seq":${seq},"type":${JSON.stringify(type)},"ts":${ts},"data":${dataJson ?? '{}'}${tail}`;
}

/** The JSON text of an event from its run id and stored body: exactly JSON.stringify of the event. */
export function eventJson(runId: string, body: string): string {
  return `{"runId":${JSON.stringify(runId)},${body.slice(1)}`;
}

/**
 * Events' JSON texts without their run id (a compact stream frame's
 * events): the inverse of eventJson, a slice for every text eventJson made
 * (the run id's JSON is written once, not per event). A text made otherwise
 * (eventTextOf: its keys in the object's order) is parsed and written again
 * without it.
 */
export function compactEventJson(runId: string): (json: string) => string {
  const prefix = `{"runId":${JSON.stringify(runId)},`;
  return (json) => {
    if (json.startsWith(prefix)) return `{${json.slice(prefix.length)}`;
    const { runId: _omitted, ...rest } = JSON.parse(json) as RunEvent;
    return JSON.stringify(rest);
  };
}

/** The text of an event that only exists as an object (events read back before texts were kept, tests). */
export function eventTextOf(event: RunEvent): EventText {
  return { seq: event.seq, type: event.type, json: JSON.stringify(event) };
}

/**
 * Consecutive events as their texts joined by commas (UTF-8, the inside of
 * a JSON array), with what a stream needs to resume and to end: how many,
 * the seq of the last one and its type. `count` 0: nothing after `after`.
 */
export interface JoinedEventTexts {
  count: number;
  last: number;
  lastType: string;
  json: Buffer;
  /** maxBytes stopped the page before its limit with events after it (see EventTextPage.cut). */
  cut: boolean;
}

/** A page of events' texts that says whether its byte bound cut it short (RunStore.readEventTextPage). */
export interface EventTextPage {
  texts: EventText[];
  /**
   * `maxBytes` stopped the page before `limit` while events were left after
   * it: the reader reads again after its last. A page shorter than `limit`
   * that is not cut reached the run's last event as of the read, which is
   * what a stream's catch-up takes as "caught up"; a cut page taken so
   * left a watcher waiting for events already stored.
   */
  cut: boolean;
}

