import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { artifactNameProblem } from '@runtrail/protocol';

/** Name → "mtime:size" of the regular files directly in a folder (empty if it does not exist). */
export type FolderState = Map<string, string>;

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
  stored: string[];
  /** Files not stored, each with why. */
  skipped: Array<{ name: string; reason: string }>;
}

/**
 * Store as artifacts the files a command wrote into `dir`: those new or
 * changed since `before`, oldest first (so their ordinals follow the order
 * they were written), each under its file name. Subfolders are not
 * descended into (artifact names have no path separators). A file the run
 * refuses (too large, bad name) is reported and the others still go.
 */
export async function collectArtifacts(
  dir: string,
  before: FolderState,
  store: (name: string, path: string) => Promise<unknown>,
): Promise<CollectResult> {
  const after = await folderState(dir);
  const changed = [...after].filter(([name, sig]) => before.get(name) !== sig);
  changed.sort(([a, sa], [b, sb]) => Number(sa.split(':')[0]) - Number(sb.split(':')[0]) || a.localeCompare(b));
  const result: CollectResult = { stored: [], skipped: [] };
  for (const [name] of changed) {
    const problem = artifactNameProblem(name);
    if (problem) {
      result.skipped.push({ name, reason: `its name ${problem}` });
      continue;
    }
    try {
      await store(name, join(dir, name));
      result.stored.push(name);
    } catch (err) {
      result.skipped.push({ name, reason: (err as Error).message });
    }
  }
  return result;
}
