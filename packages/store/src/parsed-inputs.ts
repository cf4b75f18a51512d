import { parse } from './rows.js';

/** Inputs shorter than this are parsed each time: microseconds, not worth the memory. */
const KEEP_FROM_CHARS = 16 * 1024;
/** All kept input texts together stay under this; the least recently used go first. */
const KEEP_AT_MOST_CHARS = 64 * 1024 * 1024;

/**
 * Parsed run inputs, kept for the large ones. A run's input never changes
 * once it is created, yet every append, heartbeat and read hands back the
 * whole run: parsing a 1 MiB input on each append cost ~25 ms of the
 * server's one thread. A kept value is used only when the stored text is the
 * same (a run deleted and imported again under its id has another), and it
 * is frozen, because every caller now shares it.
 */
export class ParsedInputs {
  private readonly kept = new Map<string, { text: string; value: unknown }>();
  private chars = 0;

  constructor(
    private readonly keepFromChars = KEEP_FROM_CHARS,
    private readonly keepAtMostChars = KEEP_AT_MOST_CHARS,
  ) {}

  parse(runId: string, text: string | null): unknown {
    if (text === null || text.length < this.keepFromChars) return parse(text, null);
    const hit = this.kept.get(runId);
    if (hit !== undefined && hit.text === text) {
      // Most recently used last: eviction takes from the front.
      this.kept.delete(runId);
      this.kept.set(runId, hit);
      return hit.value;
    }
    const value = deepFreeze(parse<unknown>(text, null));
    this.forget(runId);
    if (text.length <= this.keepAtMostChars) {
      this.kept.set(runId, { text, value });
      this.chars += text.length;
      for (const [id] of this.kept) {
        if (this.chars <= this.keepAtMostChars) break;
        this.forget(id);
      }
    }
    return value;
  }

  forget(runId: string): void {
    const hit = this.kept.get(runId);
    if (hit === undefined) return;
    this.kept.delete(runId);
    this.chars -= hit.text.length;
  }

  /** How many inputs are kept (for tests). */
  get size(): number {
    return this.kept.size;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
