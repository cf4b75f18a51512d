import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * `mkdir -p` that always ends. Node's own `recursive: true` spins for ever,
 * a core at 100 % and no error, when a parent exists but cannot hold
 * children: a path under /proc or /sys, or below a dangling symlink. The
 * kernel answers ENOENT there, which Node takes for "the parent is missing",
 * makes the parent (EEXIST: fine) and tries the child again, endlessly
 * (`runtrail serve --data-dir /proc/x` hung silently). Here a child that
 * still cannot be made once its parent exists is the error it is.
 *
 * Synchronous: it runs at start and before an artifact's first write into
 * a new folder, where one or two mkdir calls cost microseconds.
 */
export function makeDirectory(path: string): void {
  if (tryMkdir(path)) return;
  const parent = dirname(path);
  if (parent === path) throw new Error(`cannot create ${path}: the root does not exist`);
  makeDirectory(parent);
  if (!tryMkdir(path)) {
    throw Object.assign(new Error(`cannot create the directory ${path}: its parent ${parent} exists but cannot hold it (ENOENT)`), { code: 'ENOENT', path });
  }
}

/** mkdir of one level: true when the directory is there afterwards, false when its parent is missing (ENOENT). */
function tryMkdir(path: string): boolean {
  try {
    mkdirSync(path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code === 'EEXIST') {
      const found = statSync(path, { throwIfNoEntry: false });
      if (found?.isDirectory()) return true;
      const what = found ? 'a file of that name is in the way' : 'it is a symbolic link to something that does not exist';
      throw Object.assign(new Error(`cannot create the directory ${path}: ${what}`), { code: 'ENOTDIR', path });
    }
    throw err;
  }
}
