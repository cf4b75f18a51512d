import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { artifactNameProblem } from '@runtrail/protocol';

/** Name → "mtime:size" of the regular files directly in a folder (empty if it does not exist). */
export type FolderState = Map<string, string>;

/** How often a collected folder is looked at while its command runs. */
export const DEFAULT_COLLECT_INTERVAL_MS = 2_000;

export async function folderState(dir: string): Promise<FolderState> {
  const state: FolderState = new Map();
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return state;
    throw err;
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    let info;
    try {
      info = await stat(join(dir, entry.name));
    } catch (err) {
      // Removed since it was listed (a process still writing there): not a file of the folder now.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    state.set(entry.name, `${info.mtimeMs}:${info.size}`);
  }
  return state;
}

export interface CollectResult {
  /** Files stored, in the order first stored. */
  stored: string[];
  /** Files not stored, each with why. */
  skipped: Array<{ name: string; reason: string }>;
  /** Why the folder could not be read at the end (the command replaced it, say): what it held since the last look is not stored. */
  unreadable?: string;
}

/** Stores one file as an artifact; `replace` when an earlier version of it was stored. */
export type StoreFile = (name: string, path: string, replace: boolean) => Promise<unknown>;

export interface CollectOptions {
  /** How often the folder is looked at while the command runs (DEFAULT_COLLECT_INTERVAL_MS); 0: only at the end. */
  intervalMs?: number;
}

/**
 * Store as artifacts the files a command writes into a folder, as it
 * writes them: a file new or changed since `start` is stored once it has
 * stayed the same for a whole interval (so one still being written is not
 * taken half-way), and `finish`, once the command has ended, stores what is
 * left and the latest version of anything changed since (replacing it,
 * the ordinal kept). A long job's files show on the run's page while it
 * runs, and survive this process dying. Oldest first, so ordinals follow
 * the order the files were written; subfolders are not descended into
 * (artifact names have no path separators). A file the run refuses (too
 * large, bad name) is reported and the others still go.
 */
export class FolderCollector {
  /** Name → signature of the version stored. */
  private readonly stored = new Map<string, string>();
  /** Names in the order first stored. */
  private readonly order: string[] = [];
  /** Name → the signature refused and why (tried again only once the file changes). */
  private readonly refused = new Map<string, { sig: string; reason: string }>();
  /** The folder as the last look saw it: a file the same two looks running is complete enough to store. */
  private seen: FolderState;
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> = Promise.resolve();
  private finished = false;

  private constructor(
    readonly dir: string,
    private readonly before: FolderState,
    private readonly store: StoreFile,
    intervalMs: number,
  ) {
    this.seen = before;
    if (intervalMs > 0) this.schedule(intervalMs);
  }

  /** Read the folder as it is before the command (rejects if it cannot be read) and start looking at it. */
  static async start(dir: string, store: StoreFile, options: CollectOptions = {}): Promise<FolderCollector> {
    return new FolderCollector(dir, await folderState(dir), store, options.intervalMs ?? DEFAULT_COLLECT_INTERVAL_MS);
  }

  /** Stop looking, and store everything new or changed that is not stored yet. */
  async finish(): Promise<CollectResult> {
    this.stop();
    await this.pass;
    let unreadable: string | undefined;
    try {
      await this.storeChanged(await folderState(this.dir), false);
    } catch (err) {
      unreadable = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    }
    return {
      stored: [...this.order],
      skipped: [...this.refused].map(([name, { reason }]) => ({ name, reason })),
      ...(unreadable === undefined ? {} : { unreadable }),
    };
  }

  /** Stop looking, storing nothing more (the command never started). */
  stop(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(intervalMs: number): void {
    this.timer = setTimeout(() => {
      this.pass = this.look().finally(() => {
        if (!this.finished) this.schedule(intervalMs);
      });
    }, intervalMs);
    // The command, not this, keeps the process alive.
    this.timer.unref();
  }

  private async look(): Promise<void> {
    let now: FolderState;
    try {
      now = await folderState(this.dir);
    } catch (err) {
      // Unreadable for now (replaced, permissions changing): the final look says so if it still is.
      void err;
      return;
    }
    await this.storeChanged(now, true);
    this.seen = now;
  }

  private async storeChanged(now: FolderState, settledOnly: boolean): Promise<void> {
    const due = [...now].filter(
      ([name, sig]) =>
        this.before.get(name) !== sig &&
        this.stored.get(name) !== sig &&
        this.refused.get(name)?.sig !== sig &&
        (!settledOnly || this.seen.get(name) === sig),
    );
    due.sort(([a, sa], [b, sb]) => Number(sa.split(':')[0]) - Number(sb.split(':')[0]) || a.localeCompare(b));
    for (const [name, sig] of due) {
      const problem = artifactNameProblem(name);
      if (problem) {
        this.refused.set(name, { sig, reason: `its name ${problem}` });
        continue;
      }
      try {
        await this.store(name, join(this.dir, name), this.stored.has(name));
        if (!this.stored.has(name)) this.order.push(name);
        this.stored.set(name, sig);
        this.refused.delete(name);
      } catch (err) {
        this.refused.set(name, { sig, reason: (err as Error).message });
      }
    }
  }
}
