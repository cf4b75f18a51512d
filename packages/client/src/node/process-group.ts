import { readFileSync, readdirSync } from 'node:fs';

/**
 * Signal every process of a group. A subprocess is spawned as the leader of
 * its own group, so its children and grandchildren (a shell pipeline, a
 * Python pool) are reached too; killing only the leader would orphan them
 * (field note 6). Returns false when no process of the group is left.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/**
 * Whether any LIVE process is left in the group. A killed grandchild stays a
 * zombie until init reaps it, and `kill(-pgid, 0)` still counts zombies; on
 * Linux /proc tells them apart, so a dead group is seen as dead at once.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch (err) {
    // No /proc (a restricted container): fall back to kill(0), which said alive.
    void err;
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch (err) {
      // The process exited while we listed /proc: it is not alive.
      void err;
      continue;
    }
    // Fields after the parenthesised command name: state, ppid, pgrp, ...
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[2]) === pgid && rest[0] !== 'Z' && rest[0] !== 'X') return true;
  }
  return false;
}
