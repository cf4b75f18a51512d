import { RuntrailError, type RunEvent } from '@runtrail/protocol';

/** An async iterator over a bounded queue that fails loudly instead of dropping. */
export class EventQueue implements AsyncIterator<RunEvent> {
  private items: RunEvent[] = [];
  private head = 0;
  private waiting: ((r: IteratorResult<RunEvent>) => void) | null = null;
  private rejectWaiting: ((err: unknown) => void) | null = null;
  private ended = false;
  private error: unknown = null;

  constructor(
    private readonly max: number,
    private readonly onReturn: () => void,
  ) {}

  push(events: readonly RunEvent[]): void {
    if (this.ended) return;
    for (const e of events) this.items.push(e);
    if (this.items.length - this.head > this.max) {
      this.items = [];
      this.head = 0;
      this.end(new RuntrailError('internal', `the iterator fell more than ${this.max} events behind; read faster or resume with watchRun(id, {after})`));
      this.onReturn();
      return;
    }
    this.wake();
  }

  end(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.wake();
  }

  next(): Promise<IteratorResult<RunEvent>> {
    if (this.head < this.items.length) return Promise.resolve({ value: this.take(), done: false });
    if (this.ended) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.rejectWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<RunEvent>> {
    this.ended = true;
    this.items = [];
    this.onReturn();
    return Promise.resolve({ value: undefined, done: true });
  }

  private take(): RunEvent {
    const e = this.items[this.head++]!;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return e;
  }

  private wake(): void {
    const resolve = this.waiting;
    const reject = this.rejectWaiting;
    if (!resolve || !reject) return;
    this.waiting = this.rejectWaiting = null;
    if (this.head < this.items.length) resolve({ value: this.take(), done: false });
    else if (this.ended) {
      if (this.error) reject(this.error);
      else resolve({ value: undefined, done: true });
    }
  }
}
